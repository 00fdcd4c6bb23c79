from beakerd.cli import main

raise SystemExit(main())

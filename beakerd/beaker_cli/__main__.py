import sys

from beakerd.beaker_cli import main

sys.exit(main())

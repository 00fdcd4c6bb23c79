"""The registry's tables. Each string is one migration; append, never edit, once released."""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE repositories (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        -- Set once a Beaker image is committed: no push, tag move or delete after that.
        immutable INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );

    CREATE TABLE repository_blobs (
        repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
        digest TEXT NOT NULL REFERENCES blobs (digest),
        created_at REAL NOT NULL,
        PRIMARY KEY (repository_id, digest)
    ) WITHOUT ROWID;
    CREATE INDEX repository_blobs_digest ON repository_blobs (digest);

    -- Manifest bytes are stored once per digest, like blobs.
    CREATE TABLE manifest_contents (
        digest TEXT PRIMARY KEY,
        content BLOB NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE manifests (
        repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
        digest TEXT NOT NULL REFERENCES manifest_contents (digest),
        media_type TEXT NOT NULL,
        size INTEGER NOT NULL,
        artifact_type TEXT,
        subject TEXT,
        annotations TEXT,
        created_at REAL NOT NULL,
        PRIMARY KEY (repository_id, digest)
    ) WITHOUT ROWID;
    CREATE INDEX manifests_subject ON manifests (repository_id, subject) WHERE subject IS NOT NULL;
    CREATE INDEX manifests_digest ON manifests (digest);

    -- What a manifest points at: blobs (config, layers) and, for an index, other manifests.
    CREATE TABLE manifest_references (
        repository_id INTEGER NOT NULL,
        manifest_digest TEXT NOT NULL,
        child_digest TEXT NOT NULL,
        child_is_manifest INTEGER NOT NULL,
        PRIMARY KEY (repository_id, manifest_digest, child_digest),
        FOREIGN KEY (repository_id, manifest_digest)
            REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
    ) WITHOUT ROWID;
    CREATE INDEX manifest_references_child ON manifest_references (child_digest);

    CREATE TABLE tags (
        repository_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (repository_id, name),
        FOREIGN KEY (repository_id, digest)
            REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
    ) WITHOUT ROWID;

    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        "offset" INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
    # The digest an upload is being published under, set just before its file is linked into
    # blobs/: if the process dies before the blob's row is committed, the garbage collector
    # knows which file that session may have left without a row when the session expires.
    # The index serves GC's scans for recently created or linked blobs.
    """
    ALTER TABLE uploads ADD COLUMN digest TEXT;
    CREATE INDEX uploads_updated_at ON uploads (updated_at);
    CREATE INDEX blobs_created_at ON blobs (created_at)
    """,
    # What replicas share besides the data (PostgreSQL): the change counter that every process
    # polls (storage/generation_row.py) and the server's secrets, such as the registry's
    # signing key (storage/secrets.py). SQLite keeps both in the data folder.
    """
    CREATE TABLE change_counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO change_counters (name, value) VALUES ('registry', 0);

    CREATE TABLE server_secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        created_at REAL NOT NULL
    ) WITHOUT ROWID
    """,
]

"""The metadata tables. Each item is one migration; append, never edit, once released.

Times are UNIX seconds (REAL). Names are unique where Beaker makes them unique: accounts and
organizations globally, workspaces per organization, images per author.
"""

from storage.database import Migration
from storage.triggers import Trigger, trigger_migration

# A Beaker image's pin ends when the image is deleted (or its digest changes): the manifest it
# pinned goes into garbage collection's review queue (storage/review.py), whose own triggers
# cannot see this table.
_UNPIN = (
    "INSERT INTO gc_manifest_review (repository_id, digest, review_after)"
    " SELECT r.id, OLD.digest, 0 FROM repositories r WHERE r.name = OLD.repository"
    " ON CONFLICT (repository_id, digest) DO UPDATE SET review_after = 0"
)

# A repository whose image or account is gone may be an orphan (storage/orphans.py).
_REVIEW_IMAGE_REPOSITORY = (
    "INSERT INTO gc_repository_review (repository_id, review_after)"
    " SELECT r.id, 0 FROM repositories r WHERE r.name = OLD.repository"
    " ON CONFLICT (repository_id) DO UPDATE SET review_after = 0"
)
_REVIEW_NAMESPACE = (
    "INSERT INTO gc_repository_review (repository_id, review_after)"
    " SELECT r.id, 0 FROM repositories r WHERE r.name = OLD.name OR r.name LIKE OLD.name || '/%'"
    " ON CONFLICT (repository_id) DO UPDATE SET review_after = 0"
)

MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        admin INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );

    -- Only the sha256 of a token's secret is kept: a stolen database does not give logins.
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        secret_sha256 TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        expires REAL,
        revoked REAL
    );
    CREATE INDEX api_tokens_account ON api_tokens (account_id);

    CREATE TABLE organizations (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    );

    CREATE TABLE organization_members (
        organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        role TEXT NOT NULL DEFAULT 'member',
        PRIMARY KEY (organization_id, account_id)
    ) WITHOUT ROWID;
    CREATE INDEX organization_members_account ON organization_members (account_id);

    CREATE TABLE workspaces (
        id TEXT PRIMARY KEY,
        organization_id TEXT NOT NULL REFERENCES organizations (id),
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        author_id TEXT NOT NULL REFERENCES accounts (id),
        public INTEGER NOT NULL DEFAULT 0,
        archived INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        modified REAL NOT NULL,
        UNIQUE (organization_id, name)
    );

    -- repository: the internal registry repository holding the image's content. digest and
    -- size are set on commit, and the garbage collector treats (repository, digest) as a root.
    CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT,
        author_id TEXT NOT NULL REFERENCES accounts (id),
        workspace_id TEXT NOT NULL REFERENCES workspaces (id),
        description TEXT NOT NULL DEFAULT '',
        narrative TEXT NOT NULL DEFAULT '',
        original_tag TEXT NOT NULL DEFAULT '',
        local_image_id TEXT,
        repository TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        committed REAL,
        digest TEXT,
        size INTEGER,
        UNIQUE (author_id, name)
    );
    CREATE INDEX images_workspace ON images (workspace_id, created)
    """,
    # Every image owns its repository from creation on (pushes never create it): give images
    # made before this rule theirs, frozen when committed.
    """
    INSERT INTO repositories (name, immutable, created_at)
    SELECT repository, CASE WHEN committed IS NULL THEN 0 ELSE 1 END, created FROM images WHERE true
    ON CONFLICT (name) DO NOTHING
    """,
    # The narrative's HTML, rendered when it is written (metadata/narratives.py); NULL on rows
    # from before, which their first page view renders and fills.
    """
    ALTER TABLE images ADD COLUMN narrative_html TEXT
    """,
    trigger_migration(
        [
            Trigger(
                "gc_image_deleted", "DELETE", "images", [_UNPIN], when="OLD.digest IS NOT NULL"
            ),
            Trigger("gc_image_repository", "DELETE", "images", [_REVIEW_IMAGE_REPOSITORY]),
            Trigger("gc_account_deleted", "DELETE", "accounts", [_REVIEW_NAMESPACE]),
            Trigger(
                "gc_account_renamed",
                "UPDATE OF name",
                "accounts",
                [_REVIEW_NAMESPACE],
                when="OLD.name <> NEW.name",
            ),
            Trigger(
                "gc_image_unpinned",
                "UPDATE OF digest",
                "images",
                [_UNPIN],
                when="OLD.digest IS NOT NULL AND (NEW.digest IS NULL OR NEW.digest <> OLD.digest)",
            ),
        ],
    ),
    # An account's storage quota in bytes (`beakerd account quota`); NULL: the server's default.
    """
    ALTER TABLE accounts ADD COLUMN quota_bytes INTEGER
    """,
    # Web sessions (metadata/web_sessions.py): the cookie holds a random ID, the row only its
    # sha256. A session lives no longer than the API token it was signed in with (joined on
    # every look-up), so revoking the token ends it. The images_* indexes serve the web lists'
    # orders; narrative_html is cleared so the first view renders it again with
    # tables and task lists (metadata/narratives.py).
    """
    CREATE TABLE web_sessions (
        id_sha256 TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
        token_id TEXT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
        csrf_token TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX web_sessions_token ON web_sessions (token_id);
    CREATE INDEX web_sessions_expires ON web_sessions (expires);
    CREATE INDEX images_created ON images (created, id);
    CREATE INDEX images_name_order ON images (coalesce(name, ''), id);
    CREATE INDEX images_size_order ON images (coalesce(size, -1), id);
    UPDATE images SET narrative_html = NULL WHERE narrative_html IS NOT NULL
    """,
]

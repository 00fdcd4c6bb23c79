"""The registry's tables. Each item is one migration; append, never edit, once released."""

from storage.database import Migration
from storage.triggers import Trigger, trigger_migration

# Enqueueing for garbage collection's review (storage/review.py). An item already queued keeps
# the earlier of its two review times: the review itself finds the right one.
_REVIEW_BLOB = (
    "INSERT INTO gc_blob_review (digest, review_after) {}"
    " ON CONFLICT (digest) DO UPDATE SET review_after = CASE"
    " WHEN excluded.review_after < gc_blob_review.review_after THEN excluded.review_after"
    " ELSE gc_blob_review.review_after END"
)
_REVIEW_LINK = (
    "INSERT INTO gc_link_review (repository_id, digest, review_after) {}"
    " ON CONFLICT (repository_id, digest) DO UPDATE SET review_after = CASE"
    " WHEN excluded.review_after < gc_link_review.review_after THEN excluded.review_after"
    " ELSE gc_link_review.review_after END"
)
_REVIEW_MANIFEST = (
    "INSERT INTO gc_manifest_review (repository_id, digest, review_after) {}"
    " ON CONFLICT (repository_id, digest) DO UPDATE SET review_after = CASE"
    " WHEN excluded.review_after < gc_manifest_review.review_after THEN excluded.review_after"
    " ELSE gc_manifest_review.review_after END"
)

# Every change that may leave a blob or a manifest unheld queues it: a new blob (it may never be
# referenced), a dropped reference (manifest deleted, directly or with its repository), a new
# manifest (it may never be tagged), a tag deleted or moved, a deleted subject (its
# referrers). A dropped hold queues its item with review time 0: the grace period counts from
# the blob's or manifest's own times, which the review reads. A deleted manifest queues itself
# too, so that its content goes once no repository holds that digest.
_REVIEW_TRIGGERS = [
    Trigger(
        "gc_blob_created", "INSERT", "blobs",
        [_REVIEW_BLOB.format("VALUES (NEW.digest, NEW.created_at)")],
    ),
    Trigger(
        "gc_blob_unreferenced", "DELETE", "manifest_references",
        [_REVIEW_BLOB.format("VALUES (OLD.child_digest, 0)")],
        when="OLD.child_is_manifest = 0",
    ),
    Trigger(
        "gc_child_unreferenced", "DELETE", "manifest_references",
        [_REVIEW_MANIFEST.format("VALUES (OLD.repository_id, OLD.child_digest, 0)")],
        when="OLD.child_is_manifest = 1",
    ),
    Trigger(
        "gc_manifest_created", "INSERT", "manifests",
        [_REVIEW_MANIFEST.format("VALUES (NEW.repository_id, NEW.digest, NEW.created_at)")],
    ),
    Trigger(
        "gc_manifest_deleted", "DELETE", "manifests",
        [
            _REVIEW_MANIFEST.format("VALUES (OLD.repository_id, OLD.digest, 0)"),
            _REVIEW_MANIFEST.format(
                "SELECT m.repository_id, m.digest, 0 FROM manifests m"
                " WHERE m.repository_id = OLD.repository_id AND m.subject = OLD.digest"
            ),
        ],
    ),
    Trigger(
        "gc_tag_deleted", "DELETE", "tags",
        [_REVIEW_MANIFEST.format("VALUES (OLD.repository_id, OLD.digest, 0)")],
    ),
    Trigger(
        "gc_repository_created", "INSERT", "repositories",
        [
            "INSERT INTO gc_repository_review (repository_id, review_after)"
            " VALUES (NEW.id, NEW.created_at) ON CONFLICT (repository_id) DO NOTHING"
        ],
    ),
    Trigger(
        "gc_tag_moved", "UPDATE OF digest", "tags",
        [_REVIEW_MANIFEST.format("VALUES (OLD.repository_id, OLD.digest, 0)")],
        when="OLD.digest <> NEW.digest",
    ),
]  # fmt: skip

# A link is queued when made and when a manifest of its repository stops referencing its blob
# (storage/link_review.py).
_LINK_REVIEW_TRIGGERS = [
    Trigger(
        "gc_link_made", "INSERT", "repository_blobs",
        [_REVIEW_LINK.format("VALUES (NEW.repository_id, NEW.digest, NEW.created_at)")],
    ),
    Trigger(
        "gc_link_unreferenced", "DELETE", "manifest_references",
        [_REVIEW_LINK.format("VALUES (OLD.repository_id, OLD.child_digest, 0)")],
        when="OLD.child_is_manifest = 0",
    ),
]  # fmt: skip

MIGRATIONS: list[Migration] = [
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
    # S3 sessions (storage/blobstore/s3_uploads.py) keep all their state in the row, so the
    # next chunk may land on any replica: the multipart upload, its parts as a JSON array of
    # [number, etag, size], the bytes of the tail object not yet in a part, and the sha256
    # state of every acknowledged byte (storage/sha256_state.py). Folder sessions leave them NULL.
    """
    ALTER TABLE uploads ADD COLUMN multipart_id TEXT;
    ALTER TABLE uploads ADD COLUMN parts TEXT;
    ALTER TABLE uploads ADD COLUMN tail INTEGER;
    ALTER TABLE uploads ADD COLUMN hash_state BLOB
    """,
    # Garbage collection's review queues (storage/review.py, storage/orphans.py): what may have
    # become garbage, with the time its grace period counts from, so a pass looks at candidates
    # only. Existing data is queued once here: every repository (is it owned?), every
    # unreferenced blob and every untagged manifest; leftover
    # manifest contents (which passes before this one swept) go at once.
    trigger_migration(
        _REVIEW_TRIGGERS,
        """
        CREATE TABLE gc_blob_review (
            digest TEXT PRIMARY KEY,
            review_after REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX gc_blob_review_due ON gc_blob_review (review_after, digest);

        CREATE TABLE gc_manifest_review (
            repository_id INTEGER NOT NULL,
            digest TEXT NOT NULL,
            review_after REAL NOT NULL,
            PRIMARY KEY (repository_id, digest)
        ) WITHOUT ROWID;
        CREATE INDEX gc_manifest_review_due
            ON gc_manifest_review (review_after, repository_id, digest);
        -- Deleting a manifest looks up its tags (ON DELETE CASCADE), and a review asks whether
        -- a tag holds it: without this index each is a scan of every tag.
        CREATE INDEX tags_digest ON tags (repository_id, digest);

        -- Repositories whose owner may be missing (storage/orphans.py): new ones, those of a
        -- deleted image or account.
        CREATE TABLE gc_repository_review (
            repository_id INTEGER NOT NULL,
            review_after REAL NOT NULL,
            PRIMARY KEY (repository_id)
        );
        CREATE INDEX gc_repository_review_due
            ON gc_repository_review (review_after, repository_id);

        -- Facts a pass leaves for the next (storage/review.py), by name.
        CREATE TABLE gc_state (
            name TEXT PRIMARY KEY,
            value REAL NOT NULL
        );

        INSERT INTO gc_repository_review (repository_id, review_after)
        SELECT id, created_at FROM repositories WHERE true;
        INSERT INTO gc_blob_review (digest, review_after)
        SELECT b.digest, b.created_at FROM blobs b WHERE NOT EXISTS
            (SELECT 1 FROM manifest_references mr WHERE mr.child_digest = b.digest);
        INSERT INTO gc_manifest_review (repository_id, digest, review_after)
        SELECT m.repository_id, m.digest, m.created_at FROM manifests m WHERE NOT EXISTS
            (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest);
        DELETE FROM manifest_contents WHERE NOT EXISTS
            (SELECT 1 FROM manifests m WHERE m.digest = manifest_contents.digest)
        """,
    ),
    # Policies stored by `beakerd policy set` (storage/policies.py), the webhook outbox and
    # its drop counters (storage/outbox.py). Retention and immutable-tag checks find a
    # manifest's tags by the index GC's queues brought (made here if that one was not).
    """
    CREATE TABLE repository_policies (
        repositories TEXT PRIMARY KEY,
        policy TEXT NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at REAL NOT NULL,
        last_error TEXT
    );
    CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at, id);

    CREATE TABLE webhook_counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;

    CREATE INDEX IF NOT EXISTS tags_digest ON tags (repository_id, digest)
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
    # The pull-through cache (storage/pull_cache.py): for each tag and manifest digest fetched
    # from an upstream, when the upstream last confirmed it (tags are re-checked after their
    # TTL) and when a client last pulled it (entries unused for long are aged out).
    """
    CREATE TABLE pull_cache (
        repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
        reference TEXT NOT NULL,
        digest TEXT NOT NULL,
        checked_at REAL NOT NULL,
        used_at REAL NOT NULL,
        PRIMARY KEY (repository_id, reference)
    ) WITHOUT ROWID;
    CREATE INDEX pull_cache_used_at ON pull_cache (used_at)
    """,
    # A push its quota refused (storage/refused_pushes.py) marks its open upload sessions
    # with the refusal's message and notes the links it undid. GC reviews blob links
    # (storage/link_review.py): a link that no manifest of its repository references (a
    # refused push's, left by a kill before it was undone) goes once older than the grace
    # period. Existing dangling links are queued here.
    trigger_migration(
        _LINK_REVIEW_TRIGGERS,
        """
        ALTER TABLE uploads ADD COLUMN refused TEXT;
        CREATE TABLE refused_links (
            repository_id INTEGER NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
            digest TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (repository_id, digest)
        ) WITHOUT ROWID;
        CREATE INDEX refused_links_created_at ON refused_links (created_at);

        CREATE TABLE gc_link_review (
            repository_id INTEGER NOT NULL,
            digest TEXT NOT NULL,
            review_after REAL NOT NULL,
            PRIMARY KEY (repository_id, digest)
        ) WITHOUT ROWID;
        CREATE INDEX gc_link_review_due ON gc_link_review (review_after, repository_id, digest);

        INSERT INTO gc_link_review (repository_id, digest, review_after)
        SELECT l.repository_id, l.digest, l.created_at FROM repository_blobs l WHERE NOT EXISTS
            (SELECT 1 FROM manifest_references mr WHERE mr.repository_id = l.repository_id
            AND mr.child_digest = l.digest AND mr.child_is_manifest = 0)
        """,
    ),
    # Cluster-wide claims on pull-through blob fetches (storage/fill_claims.py): one row per
    # fetch in flight, naming its process, with the expiry its heartbeat pushes back.
    """
    CREATE TABLE blob_fill_claims (
        digest TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX blob_fill_claims_expires_at ON blob_fill_claims (expires_at)
    """,
    # Chunked S3 uploads complete their multipart upload where it was made, at a key of the
    # session (storage/blobstore/s3_uploads.py), instead of copying every byte again to the
    # content address: the blob's row names that object (NULL: its content address), and a
    # session names where its multipart upload lives (NULL: `uploads/<id>/data`, as made by
    # sessions begun before this). The index serves fsck's question "which row names this
    # object?". A session's tail is at a key of the request that wrote it, which the session
    # names (NULL: `tail-<offset>`), so that two requests taking one chunk at once never write
    # or delete each other's.
    """
    ALTER TABLE blobs ADD COLUMN object_key TEXT;
    ALTER TABLE uploads ADD COLUMN object_key TEXT;
    ALTER TABLE uploads ADD COLUMN tail_key TEXT;
    CREATE INDEX blobs_object_key ON blobs (object_key)
    """,
]

-- The projector's read model (docs/projection.md). Every row here is derived from
-- the event stream: `projector rebuild` empties these tables (never `pages`) and
-- replays the stream. Times from Facebook are kept as epoch milliseconds
-- (`*_ms`), the unit of the events, so ordering never loses precision.

-- One row per event id applied, with the source of the copy that won (contract §3).
CREATE TABLE applied_events (
    event_id    text PRIMARY KEY,
    event_type  text NOT NULL,
    source      text NOT NULL,
    source_rank smallint NOT NULL,
    page_id     text,
    psid        text,
    stream_seq  bigint NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Events the projector could not apply, one row per stream message, for operators.
CREATE TABLE dead_letters (
    stream_seq       bigint PRIMARY KEY,
    subject          text NOT NULL,
    event_id         text,
    event_type       text,
    payload          text NOT NULL,
    error            text NOT NULL,
    attempts         integer NOT NULL DEFAULT 1,
    first_failed_at  timestamptz NOT NULL DEFAULT now(),
    last_failed_at   timestamptz NOT NULL DEFAULT now()
);

-- The newest page_snapshot of a page (data = the Graph page object, tokens removed).
CREATE TABLE page_snapshots (
    page_id     text PRIMARY KEY REFERENCES pages (page_id),
    data        jsonb NOT NULL,
    at_ms       bigint NOT NULL,
    event_id    text NOT NULL,
    source_rank smallint NOT NULL
);

-- The newest page_change value of each field of a page.
CREATE TABLE page_fields (
    page_id     text NOT NULL REFERENCES pages (page_id),
    field       text NOT NULL,
    value       jsonb NOT NULL,
    at_ms       bigint NOT NULL,
    event_id    text NOT NULL,
    source_rank smallint NOT NULL,
    PRIMARY KEY (page_id, field)
);

-- One row per (page, customer). The summary columns are recomputed from
-- messages and status changes whenever a batch touches the conversation.
CREATE TABLE conversations (
    page_id            text NOT NULL REFERENCES pages (page_id),
    psid               text NOT NULL,
    status             text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    status_at_ms       bigint,
    first_message_at   timestamptz,
    last_message_at    timestamptz,
    last_message_text  text,
    last_message_mid   text,
    message_count      integer NOT NULL DEFAULT 0,
    unread_count       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (page_id, psid)
);
-- The inbox lists conversations newest activity first.
CREATE INDEX conversations_inbox ON conversations (page_id, last_message_at DESC NULLS LAST, psid);
CREATE INDEX conversations_recent ON conversations (last_message_at DESC NULLS LAST, page_id, psid);

-- Every messaging event of a conversation (the winning copy), verbatim. The
-- conversation file is the `data` of the rows with in_file, ordered by
-- (timestamp_ms, event_id).
CREATE TABLE conversation_events (
    event_id     text PRIMARY KEY,
    page_id      text NOT NULL,
    psid         text NOT NULL,
    event_type   text NOT NULL,
    source       text NOT NULL,
    source_rank  smallint NOT NULL,
    timestamp_ms bigint NOT NULL,
    in_file      boolean NOT NULL,
    data         text NOT NULL,
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);
CREATE INDEX conversation_events_file ON conversation_events (page_id, psid, timestamp_ms, event_id) WHERE in_file;

-- Messages in and out, keyed by Facebook's mid.
CREATE TABLE messages (
    mid          text PRIMARY KEY,
    event_id     text NOT NULL,
    page_id      text NOT NULL,
    psid         text NOT NULL,
    direction    text NOT NULL CHECK (direction IN ('in', 'out')),
    text         text,
    attachments  jsonb,
    timestamp_ms bigint NOT NULL,
    sent_at      timestamptz NOT NULL,
    source       text NOT NULL CHECK (source IN ('webhook', 'poll', 'send')),
    source_rank  smallint NOT NULL,
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);
-- The inbox reads a conversation's messages chronologically.
CREATE INDEX messages_conversation ON messages (page_id, psid, timestamp_ms, mid);

-- Delivery and read watermarks (epoch ms) per conversation; they only move forward.
CREATE TABLE receipts (
    page_id             text NOT NULL,
    psid                text NOT NULL,
    delivery_watermark  bigint,
    read_watermark      bigint,
    PRIMARY KEY (page_id, psid),
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);

-- conversation_status events (oauth-api): the newest by `at` decides, together
-- with incoming messages (which reopen), the conversation's status.
CREATE TABLE status_changes (
    event_id    text PRIMARY KEY,
    page_id     text NOT NULL,
    psid        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('open', 'closed')),
    at_ms       bigint NOT NULL,
    source_rank smallint NOT NULL,
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);
CREATE INDEX status_changes_conversation ON status_changes (page_id, psid, at_ms DESC);

CREATE TABLE reactions (
    event_id     text PRIMARY KEY,
    page_id      text NOT NULL,
    psid         text NOT NULL,
    mid          text,
    action       text,
    reaction     text,
    emoji        text,
    timestamp_ms bigint NOT NULL,
    source_rank  smallint NOT NULL,
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);
CREATE INDEX reactions_mid ON reactions (mid);

CREATE TABLE message_edits (
    event_id     text PRIMARY KEY,
    page_id      text NOT NULL,
    psid         text NOT NULL,
    mid          text,
    text         text,
    num_edit     integer,
    timestamp_ms bigint NOT NULL,
    source_rank  smallint NOT NULL,
    FOREIGN KEY (page_id, psid) REFERENCES conversations (page_id, psid)
);
CREATE INDEX message_edits_mid ON message_edits (mid);

-- Where the projector last wrote a page's files (NULL owner: facebook/<page>/),
-- so a change of pages.owner_user_id can move them.
CREATE TABLE page_file_locations (
    page_id       text PRIMARY KEY REFERENCES pages (page_id),
    owner_user_id uuid
);

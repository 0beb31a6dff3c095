//! The server study's schema: the same tables as a study file, plus what makes the database itself
//! enforce the study's rules against a reader who connects with `psql` and their own login:
//!
//! - **identity**: each reader row names its PostgreSQL login (`readers.login`); `sacro_me()` is the
//!   reader whose login opened the session (`session_user`, which `SET ROLE` does not change);
//! - **row-level security** on `readings`, `audit`, `cases`, `predictions` and `crops`: a reader sees their
//!   own readings, others' readings of a case only after committing their own and only where the study
//!   reveals them, their own audit rows, the cases on their own work list, the model's output only after
//!   their own commit; a reader writes only their own readings of cases on their list;
//! - **grants**: readers (members of the study's group role) may SELECT these tables and INSERT, UPDATE
//!   or DELETE readings, nothing else; the audit trail is written only by `sacro_append_audit`, which
//!   readers cannot call: a trigger on `readings` audits each change itself, with the reason the session
//!   set (`sacro.reason`), stamps `committed_at` with the server's clock, and refuses a change without
//!   a reason;
//! - **triggers as a second line**: audit rows cannot be updated, deleted or truncated; once `locked`
//!   nothing changes (readings, cases, readers, crops, predictions, settings).
//!
//! Helper functions run as the database owner (`SECURITY DEFINER`, fixed `search_path`) so that the
//! policies can look at rows the reader may not see; those that take a reader as an argument are not
//! callable by readers (they could otherwise learn whether two other readers disagree).
//!
//! The hash of each audit row is computed here exactly as [`crate::session::trail::link`] computes it in
//! Rust (hex SHA-256 of the compact JSON array `[prev, at, actor, action, case, old, new, reason]`), so a
//! study pulled into a file verifies with the file's own code.

/// Newest server schema version this build writes and reads (kept in `meta` as `schema_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// The actor of the coordinator's audit rows (as in a study file).
pub(super) const COORDINATOR: &str = "coordinator";

/// Key of the transaction-level advisory lock every Sacro write takes first, so that writes to one
/// study happen one after another, as in a study file (advisory locks are per database).
pub(super) const WRITE_LOCK: i64 = 0x5AC0_0001;

/// Tables, functions, triggers and policies; run once by `create` (as the database owner), inside the
/// transaction that fills them.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE readers (
    id bigint PRIMARY KEY,
    name text NOT NULL UNIQUE,
    role text NOT NULL,
    login text UNIQUE,
    created_at text NOT NULL
);
CREATE TABLE cases (
    id text PRIMARY KEY,
    path text,
    sop_instance_uid text,
    added_at text NOT NULL,
    archive_url text,
    study_uid text,
    series_uid text,
    CHECK (path IS NOT NULL OR sop_instance_uid IS NOT NULL),
    CHECK (archive_url IS NULL OR (sop_instance_uid IS NOT NULL AND study_uid IS NOT NULL AND series_uid IS NOT NULL))
);
CREATE TABLE readings (
    case_id text NOT NULL REFERENCES cases(id),
    reader_id bigint NOT NULL REFERENCES readers(id),
    left_grade integer CHECK (left_grade BETWEEN 0 AND 4),
    right_grade integer CHECK (right_grade BETWEEN 0 AND 4),
    not_assessable text,
    comment text,
    committed_at text NOT NULL,
    PRIMARY KEY (case_id, reader_id),
    CHECK ((left_grade IS NOT NULL AND right_grade IS NOT NULL AND not_assessable IS NULL)
        OR (left_grade IS NULL AND right_grade IS NULL AND not_assessable IS NOT NULL))
);
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    at text NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    case_id text,
    old_value text,
    new_value text,
    reason text,
    hash text
);
CREATE TABLE predictions (
    case_id text NOT NULL REFERENCES cases(id),
    model_sha256 text NOT NULL,
    probability double precision NOT NULL CHECK (probability >= 0.0 AND probability <= 1.0),
    created_at text NOT NULL,
    PRIMARY KEY (case_id, model_sha256)
);
CREATE TABLE crops (
    case_id text PRIMARY KEY REFERENCES cases(id),
    x integer NOT NULL CHECK (x >= 0),
    y integer NOT NULL CHECK (y >= 0),
    width integer NOT NULL CHECK (width > 0),
    height integer NOT NULL CHECK (height > 0),
    set_by text NOT NULL,
    set_at text NOT NULL
);

CREATE FUNCTION sacro_now() RETURNS text LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp AS
$$ SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE FUNCTION sacro_setting(k text) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT value FROM meta WHERE key = k $$;

CREATE FUNCTION sacro_locked() RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT coalesce(sacro_setting('locked') = '1', false) $$;

CREATE FUNCTION sacro_reveals(what text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT coalesce((sacro_setting('settings')::json ->> what)::boolean, false) $$;

CREATE FUNCTION sacro_me() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT id FROM readers WHERE login = session_user $$;

CREATE FUNCTION sacro_my_name() RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT name FROM readers WHERE login = session_user $$;

-- The mNY rule: grade >= 2 on both sides or >= 3 on one (NULL for a film not assessable).
CREATE FUNCTION sacro_definite(l integer, r integer) RETURNS boolean LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp AS
$$ SELECT CASE WHEN l IS NULL OR r IS NULL THEN NULL ELSE (l >= 2 AND r >= 2) OR l >= 3 OR r >= 3 END $$;

-- Both primary readers have read the case and do not agree on a definite call (not assessable counts as
-- disagreement): session::consensus::primary_disagree.
CREATE FUNCTION sacro_disagree(c text, role_a text, role_b text) RETURNS boolean LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS
$$
DECLARE
    a record;
    b record;
BEGIN
    SELECT sacro_definite(r.left_grade, r.right_grade) AS d INTO a
        FROM readings r JOIN readers p ON p.id = r.reader_id WHERE r.case_id = c AND p.role = role_a
        ORDER BY p.id LIMIT 1;
    IF NOT FOUND THEN RETURN false; END IF;
    SELECT sacro_definite(r.left_grade, r.right_grade) AS d INTO b
        FROM readings r JOIN readers p ON p.id = r.reader_id WHERE r.case_id = c AND p.role = role_b
        ORDER BY p.id LIMIT 1;
    IF NOT FOUND THEN RETURN false; END IF;
    RETURN a.d IS NULL OR b.d IS NULL OR a.d <> b.d;
END
$$;

-- Whether a case is on a reader's work list: session::consensus::assigned.
CREATE FUNCTION sacro_assigned(c text, rid bigint) RETURNS boolean LANGUAGE plpgsql STABLE
    SECURITY DEFINER SET search_path = public, pg_temp AS
$$
DECLARE
    r text;
    proto text := sacro_setting('protocol');
BEGIN
    IF rid IS NULL OR NOT EXISTS (SELECT 1 FROM cases WHERE id = c) THEN RETURN false; END IF;
    IF EXISTS (SELECT 1 FROM readings WHERE case_id = c AND reader_id = rid) THEN RETURN true; END IF;
    SELECT role INTO r FROM readers WHERE id = rid;
    IF r IS NULL THEN RETURN false; END IF;
    IF r = 'reader' THEN RETURN true; END IF;
    IF proto = 'adjudicated' THEN
        IF r IN ('local', 'central1') THEN RETURN true; END IF;
        IF r = 'central2' THEN RETURN sacro_disagree(c, 'local', 'central1'); END IF;
    ELSIF proto = 'two-central' THEN
        IF r IN ('central1', 'central2') THEN RETURN true; END IF;
        IF r = 'adjudicator' THEN RETURN sacro_disagree(c, 'central1', 'central2'); END IF;
    END IF;
    RETURN false;
END
$$;

CREATE FUNCTION sacro_on_my_list(c text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT sacro_assigned(c, sacro_me()) $$;

-- Whether a case ID exists (to tell an unknown case from one not on the reader's list; IDs are
-- pseudonymous and say nothing of readings).
CREATE FUNCTION sacro_case_exists(c text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT EXISTS (SELECT 1 FROM cases WHERE id = c) $$;

CREATE FUNCTION sacro_committed(c text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$ SELECT EXISTS (SELECT 1 FROM readings WHERE case_id = c AND reader_id = sacro_me()) $$;

-- A text as a JSON value, as serde_json writes it (null for NULL).
CREATE FUNCTION sacro_j(t text) RETURNS text LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp AS
$$ SELECT coalesce(to_json(t)::text, 'null') $$;

-- A reading row as serde_json writes grading::Reading.
CREATE FUNCTION sacro_reading_json(l integer, r integer, na text, cm text) RETURNS text LANGUAGE sql
    IMMUTABLE SET search_path = public, pg_temp AS
$$ SELECT '{"assessment":'
    || CASE WHEN l IS NOT NULL THEN '{"Graded":{"left":' || l || ',"right":' || r || '}}'
            ELSE '{"NotAssessable":{"reason":' || sacro_j(na) || '}}' END
    || ',"comment":' || sacro_j(cm) || '}' $$;

-- Appends one audit row linked to the chain; rows are appended one at a time (the head's row lock).
CREATE FUNCTION sacro_append_audit(p_actor text, p_action text, p_case text, p_old text, p_new text,
    p_reason text) RETURNS text LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$
DECLARE
    prev text;
    stamp text := sacro_now();
    h text;
    n bigint;
BEGIN
    SELECT value INTO prev FROM meta WHERE key = 'audit_head' FOR UPDATE;
    IF NOT FOUND THEN RAISE EXCEPTION 'sacro: the audit head is missing'; END IF;
    h := encode(sha256(convert_to('[' || sacro_j(prev) || ',' || sacro_j(stamp) || ',' || sacro_j(p_actor)
        || ',' || sacro_j(p_action) || ',' || sacro_j(p_case) || ',' || sacro_j(p_old) || ','
        || sacro_j(p_new) || ',' || sacro_j(p_reason) || ']', 'UTF8')), 'hex');
    SELECT coalesce(max(seq), 0) + 1 INTO n FROM audit;
    INSERT INTO audit (seq, at, actor, action, case_id, old_value, new_value, reason, hash)
        VALUES (n, stamp, p_actor, p_action, p_case, p_old, p_new, p_reason, h);
    UPDATE meta SET value = h WHERE key = 'audit_head';
    RETURN h;
END
$$;

-- Whether this session is the owner copying a study in verbatim (`study push`): only then are the
-- reading triggers silent.
CREATE FUNCTION sacro_copying() RETURNS boolean LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp AS
$$ SELECT coalesce(current_setting('sacro.copying', true), '') = 'on'
      AND session_user = (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) $$;

CREATE FUNCTION sacro_refuse_when_locked() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$
BEGIN
    IF sacro_locked() THEN RAISE EXCEPTION 'sacro: study is locked'; END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION sacro_refuse_always() RETURNS trigger LANGUAGE plpgsql
    SET search_path = public, pg_temp AS
$$ BEGIN RAISE EXCEPTION 'sacro: audit rows are append-only'; END $$;

CREATE FUNCTION sacro_reading_stamp() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$
BEGIN
    IF sacro_copying() THEN RETURN NEW; END IF;
    IF TG_OP = 'UPDATE' AND (NEW.case_id <> OLD.case_id OR NEW.reader_id <> OLD.reader_id) THEN
        RAISE EXCEPTION 'sacro: a reading cannot move to another case or reader';
    END IF;
    NEW.committed_at := sacro_now();
    RETURN NEW;
END
$$;

CREATE FUNCTION sacro_reading_audit() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = public, pg_temp AS
$$
DECLARE
    why text := nullif(btrim(coalesce(current_setting('sacro.reason', true), '')), '');
    who text;
BEGIN
    IF sacro_copying() THEN RETURN NULL; END IF;
    IF TG_OP = 'INSERT' THEN
        SELECT name INTO who FROM readers WHERE id = NEW.reader_id;
        PERFORM sacro_append_audit(who, 'create_reading', NEW.case_id, NULL,
            sacro_reading_json(NEW.left_grade, NEW.right_grade, NEW.not_assessable, NEW.comment),
            nullif(current_setting('sacro.reason', true), ''));
    ELSIF TG_OP = 'UPDATE' THEN
        IF why IS NULL THEN RAISE EXCEPTION 'sacro: changing a reading needs a reason'; END IF;
        SELECT name INTO who FROM readers WHERE id = NEW.reader_id;
        PERFORM sacro_append_audit(who, 'change_reading', NEW.case_id,
            sacro_reading_json(OLD.left_grade, OLD.right_grade, OLD.not_assessable, OLD.comment),
            sacro_reading_json(NEW.left_grade, NEW.right_grade, NEW.not_assessable, NEW.comment),
            current_setting('sacro.reason', true));
    ELSE
        IF why IS NULL THEN RAISE EXCEPTION 'sacro: deleting a reading needs a reason'; END IF;
        SELECT name INTO who FROM readers WHERE id = OLD.reader_id;
        PERFORM sacro_append_audit(who, 'delete_reading', OLD.case_id,
            sacro_reading_json(OLD.left_grade, OLD.right_grade, OLD.not_assessable, OLD.comment),
            NULL, current_setting('sacro.reason', true));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER readings_locked BEFORE INSERT OR UPDATE OR DELETE ON readings
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_when_locked();
CREATE TRIGGER readings_stamp BEFORE INSERT OR UPDATE ON readings
    FOR EACH ROW EXECUTE FUNCTION sacro_reading_stamp();
CREATE TRIGGER readings_audit AFTER INSERT OR UPDATE OR DELETE ON readings
    FOR EACH ROW EXECUTE FUNCTION sacro_reading_audit();
CREATE TRIGGER cases_locked BEFORE INSERT OR UPDATE OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_when_locked();
CREATE TRIGGER readers_locked BEFORE INSERT OR UPDATE OR DELETE ON readers
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_when_locked();
CREATE TRIGGER crops_locked BEFORE INSERT OR UPDATE OR DELETE ON crops
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_when_locked();
CREATE TRIGGER predictions_locked BEFORE INSERT OR UPDATE OR DELETE ON predictions
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_when_locked();
CREATE TRIGGER meta_locked BEFORE INSERT OR UPDATE OR DELETE ON meta
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_when_locked();
CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION sacro_refuse_always();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION sacro_refuse_always();
CREATE TRIGGER readings_no_truncate BEFORE TRUNCATE ON readings
    FOR EACH STATEMENT EXECUTE FUNCTION sacro_refuse_always();

ALTER TABLE readings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE cases ENABLE ROW LEVEL SECURITY;
ALTER TABLE predictions ENABLE ROW LEVEL SECURITY;
ALTER TABLE crops ENABLE ROW LEVEL SECURITY;

CREATE POLICY own_or_revealed ON readings FOR SELECT
    USING (reader_id = sacro_me()
        OR (sacro_reveals('reveal_readers_after_commit') AND sacro_committed(case_id)));
CREATE POLICY commit_own ON readings FOR INSERT
    WITH CHECK (reader_id = sacro_me() AND sacro_on_my_list(case_id));
CREATE POLICY change_own ON readings FOR UPDATE
    USING (reader_id = sacro_me()) WITH CHECK (reader_id = sacro_me());
CREATE POLICY delete_own ON readings FOR DELETE USING (reader_id = sacro_me());
CREATE POLICY own_rows ON audit FOR SELECT USING (actor = sacro_my_name());
CREATE POLICY on_my_list ON cases FOR SELECT USING (sacro_on_my_list(id));
CREATE POLICY after_commit ON predictions FOR SELECT
    USING (sacro_reveals('reveal_model_after_commit') AND sacro_committed(case_id));
CREATE POLICY on_my_list ON crops FOR SELECT USING (sacro_on_my_list(case_id));

REVOKE ALL ON meta, readers, cases, readings, audit, predictions, crops FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION sacro_append_audit(text, text, text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION sacro_assigned(text, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION sacro_disagree(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION sacro_setting(text) FROM PUBLIC;
"#;

/// The grants to the study's group role (its name quoted by the server's `format('%I')`), run by the
/// owner after [`SCHEMA`]: who may connect, and what readers may touch.
pub(super) const GRANTS: &str = r#"
CREATE FUNCTION pg_temp.sacro_grant(grp text) RETURNS void LANGUAGE plpgsql AS
$$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE r.rolname = grp) THEN
        RAISE EXCEPTION 'sacro: the reader group role % exists already, with members (from an earlier study in a database of this name?): drop it first', grp;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = grp) THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', grp);
    END IF;
    EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), grp);
    EXECUTE format('GRANT SELECT ON meta, readers, cases, readings, audit, predictions, crops TO %I', grp);
    EXECUTE format('GRANT INSERT, UPDATE, DELETE ON readings TO %I', grp);
END
$$;
"#;

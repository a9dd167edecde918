-- Written by hand: chat_append (drizzle/0005_append_locked_only.sql) again, with two changes. The statement that
-- locks the batch's conversations (FOR UPDATE returns each row as locked, so as of after the lock) now also reads
-- what the batch needs of them into one jsonb object keyed by conversation id, and each item finds its
-- conversation there by key. The writing statement no longer joins the items to the conversations: with hash and
-- merge joins off (see below), that join compared every item with every conversation of the batch, and so did
-- each per-item check (a 260-item batch over 94 conversations: about 53,000 comparisons, a quarter of the
-- function's time). A conversation not locked by the first statement is still not in the object, so it still
-- counts as missing ('m').
--
-- And the senders' member rows are updated in (conversation, user) order, as every statement updating several
-- member rows takes them (store/messages.ts: delivered and read cursors; store/memberships.ts: an ownership
-- transfer). They were updated in the order of a hash of the pairs, so a batch and a cursor update touching two of
-- the same rows (a user who sends in a conversation and pulls it, on another connection) could each hold one and
-- wait for the other, until Postgres failed one of them after deadlock_timeout. With hash and merge joins off (see
-- below), the update walks the sorted pairs in a nested loop and locks each row as it comes.
--
-- Written by hand: the group-commit writer's batch as one function (store/append.ts calls it), so a batch is one
-- statement and one round trip: lock the conversations in id order, then (reading after the lock) answer
-- retried client ids and blocked senders, reserve the seq ranges, insert the rows, move the conversations'
-- last seq, time and partition mark and the senders' last_sent_seq. One statement is one transaction: nothing
-- is visible before its commit, and a failed batch consumes no seq.
--
-- p_items: [{n, i: id, c: conversation, s: sender, k: kind, b: body, m: client id, t: time, r: 1:1 recipient}],
-- no two with the same (c, s, m). Returns one entry per item, in n order:
--   [n, 'f', seq, time ms]    stored now
--   [n, 'd', [id, conv, seq, from, kind, body, cmid, time ms, recalled]]    stored before (a retry)
--   [n, 'b']                  refused: the recipient, or the owner of the container, blocked the sender
--   [n, 'm']                  its conversation does not exist: nothing of the batch was written
--
-- Batches of one writer travel on one connection, in order, the next one sent while the one before is still
-- running. p_batch names this batch on that connection (a session setting, so only a commit keeps it);
-- p_after names the batch before it: when that one did not commit, this one fails and writes nothing, and the
-- writer writes it again after the one before (its seqs keep the order of the sends).
--
-- Every read finds its rows through an index and must go on doing so as the tables grow: a plan made while a
-- table was small (a new partition, a fresh store) would otherwise scan it whole, at a cost that grows with every
-- row written. So the function plans without sequential scans, hash or merge joins.
CREATE OR REPLACE FUNCTION chat_append(p_items jsonb, p_interval text, p_batch bigint, p_after bigint) RETURNS jsonb
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
  v_out jsonb;
  v_missing boolean;
  v_conv jsonb;
BEGIN
  IF p_after IS NOT NULL AND current_setting('chat.batch', true) IS DISTINCT FROM p_after::text THEN
    RAISE EXCEPTION 'chat_append: batch % did not commit', p_after;
  END IF;
  -- In id order, so that concurrent batches (other nodes) cannot deadlock. A row is read as locked (one another
  -- transaction changed, a transfer for instance, is read again once that one committed), and each statement of
  -- the function reads what was committed when it starts: the one below sees every message or block committed
  -- before the locks were granted.
  SELECT jsonb_object_agg(l.id, jsonb_build_array(l.kind, l.owner_id, l.last_seq, l.last_msg_at)) INTO v_conv FROM (
    SELECT c.id, c.kind, c.owner_id, c.last_seq, c.last_msg_at FROM conversations c
     WHERE c.id IN (SELECT x.c FROM jsonb_to_recordset(p_items) AS x(c text))
     ORDER BY c.id FOR UPDATE) l;
  WITH it AS (
    SELECT x.*, v_conv -> x.c AS cv FROM jsonb_to_recordset(p_items) AS x(n int, i bigint, c text, s text, k text, b jsonb, m text, t timestamptz, r text)
  ),
  -- Each item with its conversation as locked above (cv: [kind, owner, last seq, last time], null when the batch
  -- did not lock it). A retry is the same client id from the same sender in the same conversation. A container's
  -- owner (the agent serving it) was read under the lock: a transfer cannot slip in between.
  cls AS (
    SELECT it.n, it.i, it.c, it.s, it.k, it.b, it.m, it.t, (it.cv ->> 2)::bigint AS last_seq, (it.cv ->> 3)::timestamptz AS last_msg_at, p.j,
           CASE WHEN p.j IS NOT NULL THEN 'd'
                WHEN it.r IS NOT NULL AND EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = it.r AND b.blocked_id = it.s) THEN 'b'
                WHEN it.cv ->> 0 = 'container' AND it.cv ->> 1 <> it.s
                     AND EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = it.cv ->> 1 AND b.blocked_id = it.s) THEN 'b'
                WHEN it.cv IS NULL THEN 'm'
                ELSE 'f' END AS st
      FROM it LEFT JOIN LATERAL (
        SELECT jsonb_build_array(m.id::text, m.conv_id, m.seq, m.sender_id, m.kind, m.body, m.client_msg_id,
                                 (extract(epoch from m.created_at) * 1000)::float8, m.recalled_at IS NOT NULL) AS j
          FROM messages m
         WHERE it.m IS NOT NULL AND m.sender_id = it.s AND m.client_msg_id = it.m AND m.conv_id = it.c
         LIMIT 1) p ON true
  ),
  -- Seqs follow the items' order per conversation. A message's time never goes back within its conversation (a
  -- node whose clock is behind another's stamps the time of the message before): times follow seqs, which the
  -- partition mark relies on.
  fresh AS (
    SELECT cls.n, cls.i, cls.c, cls.s, cls.k, coalesce(cls.b, 'null'::jsonb) AS b, cls.m,
           cls.last_seq + row_number() OVER w AS seq,
           greatest(cls.last_msg_at, max(cls.t) OVER w) AS at
      FROM cls
     WHERE cls.st = 'f' AND NOT EXISTS (SELECT 1 FROM cls x WHERE x.st = 'm')
    WINDOW w AS (PARTITION BY cls.c ORDER BY cls.n)
  ),
  ins AS (
    INSERT INTO messages (id, conv_id, seq, sender_id, kind, body, client_msg_id, created_at)
    SELECT f.i, f.c, f.seq, f.s, f.k, f.b, f.m, f.at FROM fresh f
  ),
  -- The mark moves to the first message of the newest partition period written, when that period is newer.
  tops AS (
    SELECT f.c, max(f.seq) AS s, max(f.at) AS t, max(f.p) AS mp, (array_agg(f.seq ORDER BY f.p DESC, f.seq))[1] AS ms
      FROM (SELECT fresh.*, date_trunc(p_interval, fresh.at, 'UTC') AS p FROM fresh) f GROUP BY f.c
  ),
  upc AS (
    UPDATE conversations c SET last_seq = tops.s, last_msg_at = tops.t,
           mark_seq = CASE WHEN tops.mp > c.mark_at THEN tops.ms ELSE c.mark_seq END,
           mark_at = greatest(c.mark_at, tops.mp)
      FROM tops WHERE c.id = tops.c
  ),
  -- The senders' own latest seq per conversation ("awaiting reply" is derived from it).
  ups AS (
    UPDATE members mb SET last_sent_seq = greatest(mb.last_sent_seq, v.s)
      FROM (SELECT f.c, f.s AS u, max(f.seq) AS s FROM fresh f GROUP BY f.c, f.s ORDER BY f.c, f.s) v
     WHERE mb.conv_id = v.c AND mb.user_id = v.u
  )
  SELECT jsonb_agg(o.j ORDER BY o.n), bool_or(o.j->>1 = 'm') INTO v_out, v_missing FROM (
    SELECT f.n, jsonb_build_array(f.n, 'f', f.seq, (extract(epoch from f.at) * 1000)::float8) AS j FROM fresh f
    UNION ALL
    SELECT cls.n, CASE WHEN cls.st = 'd' THEN jsonb_build_array(cls.n, 'd', cls.j) ELSE jsonb_build_array(cls.n, cls.st) END
      FROM cls WHERE cls.st <> 'f'
  ) o;
  IF p_batch IS NOT NULL AND NOT v_missing THEN
    PERFORM set_config('chat.batch', p_batch::text, false);
  END IF;
  RETURN v_out;
END
$$;

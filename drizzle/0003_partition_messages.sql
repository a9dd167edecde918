-- Written by hand (drizzle-kit cannot express partitioning): the messages table becomes a table partitioned by
-- range of created_at (docs/storage.md). An existing table is kept as it is and attached as the partition
-- `messages_legacy` for every time before the end of the day the migration runs (its rows are not copied;
-- the indexes of the partitioned table are built on it); an empty one is dropped. The partitions from then on
-- are created by the server (store/partitions.ts), at start and on a timer.
ALTER TABLE "conversations" ADD COLUMN "mark_seq" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "conversations" ADD COLUMN "mark_at" timestamp with time zone DEFAULT '-infinity' NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" RENAME TO "messages_legacy";--> statement-breakpoint
ALTER TABLE "messages_legacy" DROP CONSTRAINT "messages_pkey";--> statement-breakpoint
DROP INDEX "messages_conv_seq_uq";--> statement-breakpoint
DROP INDEX "messages_sender_cmid_conv_uq";--> statement-breakpoint
DROP INDEX "messages_conv_time_idx";--> statement-breakpoint
CREATE TABLE "messages" (
	"id" bigint NOT NULL,
	"conv_id" text NOT NULL,
	"seq" bigint NOT NULL,
	"sender_id" text NOT NULL,
	"kind" text DEFAULT 'text' NOT NULL,
	"body" jsonb NOT NULL,
	"client_msg_id" text,
	"created_at" timestamp with time zone NOT NULL,
	"recalled_at" timestamp with time zone,
	CONSTRAINT "messages_pkey" PRIMARY KEY("id","created_at")
) PARTITION BY RANGE ("created_at");--> statement-breakpoint
CREATE INDEX "messages_conv_seq_idx" ON "messages" USING btree ("conv_id","seq");--> statement-breakpoint
CREATE INDEX "messages_sender_cmid_conv_idx" ON "messages" USING btree ("sender_id","client_msg_id","conv_id") WHERE client_msg_id is not null;--> statement-breakpoint
CREATE INDEX "messages_conv_time_idx" ON "messages" USING btree ("conv_id","created_at");--> statement-breakpoint
DO $$
DECLARE
	cut timestamptz;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM "messages_legacy") THEN
		DROP TABLE "messages_legacy";
		RETURN;
	END IF;
	SELECT date_trunc('day', greatest(now(), max("created_at")), 'UTC') + interval '1 day' INTO cut FROM "messages_legacy";
	EXECUTE format('ALTER TABLE "messages" ATTACH PARTITION "messages_legacy" FOR VALUES FROM (MINVALUE) TO (%L)', cut);
END $$;

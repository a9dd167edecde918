// The settings of the messages table's partitions (docs/storage.md) and the periods they make.
import { expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { nextPeriod, partitionName, periodStart } from "../../src/store/partitions.ts";

test("partition settings: monthly, two ahead, no retention by default; a bad value is refused at start", () => {
  const c = loadConfig({});
  expect([c.messagePartitionInterval, c.messagePartitionsAhead, c.messageRetentionDays]).toEqual(["month", 2, 0]);
  const set = loadConfig({ MESSAGE_PARTITION_INTERVAL: "week", MESSAGE_PARTITIONS_AHEAD: "4", MESSAGE_RETENTION_DAYS: "90" });
  expect([set.messagePartitionInterval, set.messagePartitionsAhead, set.messageRetentionDays]).toEqual(["week", 4, 90]);
  expect(() => loadConfig({ MESSAGE_PARTITION_INTERVAL: "year" })).toThrow(ConfigError);
  expect(() => loadConfig({ MESSAGE_PARTITIONS_AHEAD: "0" })).toThrow(ConfigError);
  expect(() => loadConfig({ MESSAGE_RETENTION_DAYS: "-1" })).toThrow(ConfigError);
});

test("periods are UTC months, weeks from Monday, and days", () => {
  const t = Date.parse("2027-03-17T23:30:00Z"); // a Wednesday
  expect(new Date(periodStart(t, "month")).toISOString()).toBe("2027-03-01T00:00:00.000Z");
  expect(new Date(periodStart(t, "week")).toISOString()).toBe("2027-03-15T00:00:00.000Z");
  expect(new Date(periodStart(t, "day")).toISOString()).toBe("2027-03-17T00:00:00.000Z");
  expect(new Date(nextPeriod(Date.parse("2027-12-01T00:00:00Z"), "month")).toISOString()).toBe("2028-01-01T00:00:00.000Z");
  expect(partitionName(Date.parse("2027-03-15T00:00:00Z"))).toBe("messages_p20270315");
});

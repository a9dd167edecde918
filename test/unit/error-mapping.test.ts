// Every dialect's answer to every core error code, as a table: a core code that falls through to a
// dialect's generic answer (or a new core code nobody mapped) fails here, not in a client.
import { describe, expect, test } from "bun:test";
import { ErrorCodes, type ErrorName } from "../../src/core/errors.ts";
import { Codes as Desk, deskErrorCode } from "../../src/dialects/desk/encode.ts";
import { FAILURE } from "../../src/dialects/jim/encode.ts";
import { Cmd } from "../../src/dialects/jim/decode.ts";
import { errorFrame as nativeError } from "../../src/dialects/native/encode.ts";
import { errorFrame as roomsError } from "../../src/dialects/rooms/encode.ts";
import { CODES as SOCIAL } from "../../src/dialects/social/encode.ts";
import { ERROR_RESULT as LIVEPUSH } from "../../src/dialects/livepush/encode.ts";

const NAMES = Object.keys(ErrorCodes) as ErrorName[];

describe("native and rooms: the core's code as is, with its name", () => {
  for (const name of NAMES) {
    test(name, () => {
      expect(nativeError("r1", name, "why")).toEqual({ t: "error", id: "r1", code: ErrorCodes[name], error: name, message: "why" });
      expect(JSON.parse(roomsError(name, "why"))).toMatchObject({ messageType: "error", code: ErrorCodes[name], error: name, messageContent: "why" });
    });
  }
});

// The desk protocol has few codes: each core error answers with the request's own code where one exists, else
// with the envelope's general codes. `failed` (-10005, "the message says why") is a decision for the names
// listed in it, never a fall-through.
const DESK_GENERAL: Record<ErrorName, number> = {
  bad_frame: Desk.badFrame,
  unknown_type: Desk.unknownApi,
  unauthorized: Desk.relogin,
  rate_limited: Desk.rateLimited,
  slow_mode: Desk.rateLimited,
  bad_request: Desk.failed,
  forbidden: Desk.failed,
  blocked: Desk.failed,
  muted: Desk.failed,
  not_member: Desk.failed,
  not_found: Desk.failed,
  conflict: Desk.failed,
  recall_expired: Desk.failed,
  unavailable: Desk.failed,
  internal: Desk.failed,
};
const DESK_REQUEST: Record<number, Partial<Record<ErrorName, number>>> = {
  31000: {},
  32000: {},
  32100: { forbidden: -32103, not_member: -32103, not_found: -32103 },
  32200: { forbidden: -32203, not_member: -32203, not_found: -32203 },
  32300: { forbidden: -32304, not_member: -32304, not_found: -32304, blocked: -32305 },
  32400: { forbidden: -32406, not_member: -32406, not_found: -32406, conflict: -32405, unavailable: -32405 },
  32500: {},
  33000: {},
};

describe("desk: each request × each core error", () => {
  for (const [key, own] of Object.entries(DESK_REQUEST)) {
    test(`api_key ${key}`, () => {
      const got = Object.fromEntries(NAMES.map((n) => [n, deskErrorCode(Number(key), n)]));
      const want = Object.fromEntries(NAMES.map((n) => [n, own[n] ?? DESK_GENERAL[n]]));
      expect(got).toEqual(want);
    });
  }
  test("an answer without a known api_key uses the general codes", () => {
    for (const n of NAMES) expect(deskErrorCode(undefined, n)).toBe(DESK_GENERAL[n]);
  });
  test("the race of two transfers: the loser's `forbidden` is -32406 (not your guest), its `conflict` -32405", () => {
    expect(deskErrorCode(32400, "forbidden")).toBe(Desk.transferNotYours);
    expect(deskErrorCode(32400, "conflict")).toBe(Desk.transferUnavailable);
  });
});

// J-IM answers a refused command with the command's own failure status, whatever the core's reason: the
// protocol has one failure code per command. A command that reaches the core must have one, else its
// failure would read "unknown cmd" (10017).
const JIM: Record<number, [number, number]> = {
  [Cmd.chat]: [10002, Cmd.chatResp],
  [Cmd.authReq]: [10010, Cmd.authResp],
  [Cmd.joinGroupReq]: [10012, Cmd.joinGroupResp],
  [Cmd.exitGroupNotify]: [10012, Cmd.exitGroupNotify],
  [Cmd.cancelMsgReq]: [10002, Cmd.cancelMsgResp],
  [Cmd.getUserReq]: [10004, Cmd.getUserResp],
  [Cmd.getMessageReq]: [10015, Cmd.getMessageResp],
};

describe("J-IM: each command that reaches the core has its own failure answer (for every core error alike)", () => {
  test("the table", () => {
    expect(FAILURE).toEqual(JIM);
    for (const [code] of Object.values(FAILURE)) expect(code).not.toBe(10017);
  });
});

// The social API (docs/social.md): every core error has a code, and the codes the docs promise stay as they are.
describe("social: every core error has its documented code", () => {
  const DOCUMENTED: Record<ErrorName, string> = {
    bad_frame: "10000",
    unknown_type: "10000",
    bad_request: "10000",
    unauthorized: "10001",
    forbidden: "10002",
    not_member: "10002",
    not_found: "10003",
    blocked: "10004",
    rate_limited: "10005",
    slow_mode: "10005",
    unavailable: "10006",
    muted: "10007",
    conflict: "10008",
    recall_expired: "10008",
    internal: "10009",
  };
  for (const name of NAMES) test(name, () => expect(SOCIAL[name]).toBe(DOCUMENTED[name]));
});

// Livepush answers in the app's envelope with a `result` code (docs/livepush.md): every core error has one.
describe("livepush: each core error has its result code", () => {
  test("the table", () => {
    expect(LIVEPUSH).toEqual({
      bad_frame: 3,
      unknown_type: 3,
      bad_request: 3,
      unauthorized: 2,
      forbidden: 4,
      blocked: 7,
      muted: 7,
      not_member: 3,
      not_found: 3,
      conflict: 5,
      recall_expired: 3,
      rate_limited: 6,
      slow_mode: 6,
      unavailable: 8,
      internal: 9,
    });
    for (const n of NAMES) expect(typeof LIVEPUSH[n]).toBe("number");
  });
});

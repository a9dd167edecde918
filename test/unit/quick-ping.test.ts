// The native heartbeat's fast path: the compact shapes are answered without parsing JSON, anything else is left
// to the full path (undefined), and the pong carries the id back as the client wrote it.
import { describe, expect, test } from "bun:test";
import { quickPing } from "../../src/dialects/native/decode.ts";
import { pong } from "../../src/dialects/native/encode.ts";

describe("native quick ping", () => {
  test("compact pings are read with their id, as the client wrote it", () => {
    expect(quickPing('{"t":"ping"}')).toBeNull();
    expect(quickPing('{"t":"ping","id":0}')).toBe("0");
    expect(quickPing('{"t":"ping","id":-42}')).toBe("-42");
    expect(quickPing('{"t":"ping","id":123456789012345}')).toBe("123456789012345");
    expect(quickPing('{"t":"ping","id":"hb-1 é"}')).toBe('"hb-1 é"');
    expect(quickPing('{"t":"ping","id":""}')).toBe('""');
    expect(quickPing(`{"t":"ping","id":"${"x".repeat(64)}"}`)).toBe(`"${"x".repeat(64)}"`);
  });

  test("anything else takes the full path", () => {
    for (const f of [
      '{"t":"ping","id":01}',
      '{"t":"ping","id":1.5}',
      '{"t":"ping","id":1e3}',
      '{"t":"ping","id":1234567890123456}',
      '{"t":"ping","id":"a\\"b"}',
      '{"t":"ping","id":"\\u0041"}',
      `{"t":"ping","id":"${"x".repeat(65)}"}`,
      '{"t":"ping","id":true}',
      '{"t":"ping","id":1,"x":2}',
      '{"t":"ping","t":"send"}',
      '{"t":"ping", "id":1}',
      '{"t":"ping"} ',
      '{"t":"pong"}',
      '{"t":"ping","id":}',
      '{"t":"ping","id":-}',
      '{"t":"ping","id":-01}',
      '{"t":"ping","id":"}',
      '{"t":"ping","id":"a}',
      '{"t":"ping","id":a"}',
      '{"t":"ping","id":"a\u0001"}',
      '{"t":"ping","id":"a\tb"}',
      '{"t":"pinG","id":1}',
      '{"t":"ping","id":12]',
    ])
      expect(quickPing(f)).toBeUndefined();
    expect(quickPing(new TextEncoder().encode('{"t":"ping"}'))).toBeUndefined();
  });

  test("the pong is JSON with the same id", () => {
    for (const id of [null, 7, -3, "hb-1 é", ""]) {
      const frame = id === null ? '{"t":"ping"}' : `{"t":"ping","id":${JSON.stringify(id)}}`;
      const p = JSON.parse(pong(quickPing(frame)!, 1000));
      expect(p).toEqual(id === null ? { t: "pong", ts: 1000 } : { t: "pong", id, ts: 1000 });
    }
  });
});

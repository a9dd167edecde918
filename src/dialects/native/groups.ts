// The native protocol's group frames (`group_*`, docs/protocol.md): each maps onto one Groups command
// and answers with a frame of the same type.
import type { Groups } from "../../core/groups.ts";
import type { FrameOf } from "./frames.ts";

export async function groupFrame(groups: Groups, me: string, type: string, f: any): Promise<Record<string, unknown>> {
  switch (type) {
    case "group_create": {
      const m = f as FrameOf<"group_create">;
      return { group: await groups.create(me, { id: m.group, kind: m.kind, name: m.name, avatar: m.avatar, attributes: m.attributes, members: m.members }) };
    }
    case "group_info":
      return { group: await groups.info(me, f.group) };
    case "group_members":
      return { group: f.group, members: await groups.members(me, f.group) };
    case "group_join":
      await groups.join(me, f.group);
      return { group: f.group };
    case "group_leave":
      return { group: f.group, left: await groups.leave(me, f.group) };
    case "group_add":
      return { group: f.group, added: await groups.add(me, f.group, (f as FrameOf<"group_add">).users) };
    case "group_remove":
      return { group: f.group, removed: await groups.remove(me, f.group, f.user) };
    case "group_role":
      await groups.setRole(me, f.group, f.user, f.role);
      return { group: f.group, user: f.user, role: f.role };
    case "group_mute":
      return { group: f.group, user: f.user, mutedUntil: await groups.mute(me, f.group, f.user, f.seconds) };
    case "group_update": {
      const m = f as FrameOf<"group_update">;
      return { group: await groups.update(me, m.group, { name: m.name, avatar: m.avatar, attributes: m.attributes }) };
    }
    case "group_dissolve":
      await groups.dissolve(me, f.group);
      return { group: f.group };
    case "group_discover":
      return { groups: await groups.discover(f.kind, f.area) };
  }
  return {};
}

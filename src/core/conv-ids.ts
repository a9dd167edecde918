// Conversation ids, built and parsed here only. The prefix names the kind of conversation:
//   d:<a>:<b>        a 1:1 chat (the two user ids in order)
//   g:<group>        a group (native, HTTP and J-IM groups)
//   g:rooms:<room>   a rooms-protocol room (a group whose id starts with `rooms:`)
//   r:<room>         a live room (viewers are a topic, not stored members)
//   c:desk:<guest>   a desk guest's conversation with the agent serving it
//   c:rooms:<id>     a rooms-protocol customer-service container

export function directConvId(a: string, b: string): string {
  return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

/** The other member of a direct conversation, or undefined for any other kind. */
export function directPeer(convId: string, me: string): string | undefined {
  if (!convId.startsWith("d:")) return undefined;
  const [, a, b] = convId.split(":");
  return a === me ? b : a;
}

export const groupConvId = (groupId: string) => `g:${groupId}`;
/** The group id of a group conversation (`g:<id>`, rooms-protocol rooms included), else undefined. */
export const groupIdOf = (conv: string) => (conv.startsWith("g:") ? conv.slice(2) : undefined);

export const roomConvId = (roomId: string) => `r:${roomId}`;
export const roomIdOf = (conv: string) => (conv.startsWith("r:") ? conv.slice(2) : undefined);
/** A live room's conversation: its viewers are a topic, not stored members. */
export const isLiveRoom = (conv: string) => conv.startsWith("r:");

export const deskConvId = (guest: string) => `c:desk:${guest}`;
export const guestOf = (conv: string) => (conv.startsWith("c:desk:") ? conv.slice(7) : undefined);

export const roomsConvId = (room: string) => `g:rooms:${room}`;
export const containerConvId = (id: string) => `c:rooms:${id}`;
export const roomOfConv = (conv: string) => (conv.startsWith("g:rooms:") ? conv.slice(8) : undefined);
export const containerOfConv = (conv: string) => (conv.startsWith("c:rooms:") ? conv.slice(8) : undefined);
/** A rooms-protocol room or container. */
export const isRoomsConv = (conv: string) => conv.startsWith("g:rooms:") || conv.startsWith("c:rooms:");

/** Groups and containers (desk, rooms) have many readers: their senders get debounced receipt counts. */
export const hasReceiptCounts = (conv: string) => conv.startsWith("g:") || conv.startsWith("c:");

// Type declarations for roomchat.js (written by hand; there is no build step).

/** The WebSocket subprotocol the client asks for: "roomchat.v1". */
export declare const SUBPROTOCOL: "roomchat.v1";

/** A stored message, as the server sends it. `id` is opaque: compare ids only for equality. */
export interface Message {
  id: string;
  roomId: string;
  userId: string;
  text: string;
  /** RFC 3339 UTC with milliseconds. */
  time: string;
}

export interface MessageEvent { type: "message"; message: Message }
/** The room is live: after the first subscribe and after each resubscription (a reconnect). */
export interface SubscribedEvent { type: "subscribed"; roomId: string }
/** `lastEventId` is no longer in the server's history: all of history follows (nothing twice). */
export interface GapEvent { type: "gap"; roomId: string; lastEventId: string | null; oldestId: string | null }
/** Subscribed with `presence: true`: who arrived and who left. */
export interface PresenceEvent { type: "presence"; roomId: string; joined: string[]; left: string[] }
/** The room was deleted: the subscription has ended. */
export interface DeletedEvent { type: "deleted"; roomId: string }
/** The server refused to resume the room (403, 422...): the subscription has ended. */
export interface ErrorEvent { type: "error"; roomId: string; code: number; message: string }
/** Frames a later server adds (edited, removed, typing) are passed on as they come. */
export interface OtherEvent { type: string; roomId?: string; [field: string]: unknown }

export type RoomEvent = MessageEvent | SubscribedEvent | GapEvent | PresenceEvent | DeletedEvent | ErrorEvent | OtherEvent;

export type ConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** A token, or a function (plain or async) that returns one: called for each new connection
 * and again whenever the server says the token expired. */
export type TokenSource = string | (() => string | Promise<string>);

export interface ClientOptions {
  /** Who posts (under --auth none) and who this connection is in presence. */
  userId?: string;
  /** Under --auth jwt. Sent in a first `auth` frame. */
  token?: TokenSource | null;
  /** A WebSocket constructor where there is no global one (e.g. the `ws` package on Node 20). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

export interface SubscribeOptions {
  /** Resume after this id: every message after it is replayed first (or a `gap` event). */
  lastId?: string | null;
  /** Also receive presence events. */
  presence?: boolean;
  /** Called with each of the room's events, in order. */
  onEvent?: (event: RoomEvent) => void;
}

export interface PublishOptions {
  /** The idempotency key (1-64 printable ASCII characters); a random one by default. */
  key?: string;
  /** Milliseconds before the promise rejects with a TimeoutError; 30000 by default. */
  timeout?: number;
  /** Post as this user instead of the client's `userId` (under --auth jwt: an admin token). */
  userId?: string;
}

/** What the server refused, with its HTTP-like code. */
export declare class RoomchatError extends Error {
  readonly name: "RoomchatError";
  readonly code: number;
  /** The server's `error` frame, when there was one. */
  readonly frame?: { type: "error"; code: number; message: string; ref?: string; roomId?: string };
  constructor(code: number, message: string, frame?: object);
}

export interface StateEvent extends CustomEvent<ConnectionState> { readonly type: "state" }
export interface ClientErrorEvent extends CustomEvent<{ code: number; message: string; roomId?: string }> {
  readonly type: "error";
}

export declare class Subscription {
  readonly roomId: string;
  /** The last id delivered, or the `lastId` given until one is: where a resume starts. */
  readonly lastId: string | null;
  readonly presence: boolean;
  /** Resolves once the server first answers `subscribed`. */
  readonly started: Promise<Subscription>;
  /** Resolves with why the subscription ended. */
  readonly ended: Promise<"deleted" | "unsubscribed" | "closed" | RoomchatError>;
  unsubscribe(): void;
}

export declare class RoomchatClient extends EventTarget {
  /** `url`: the origin of roomchat's rest or html adapter; the client connects to `<url>/api/ws`. */
  constructor(url: string | URL, options?: ClientOptions);
  readonly state: ConnectionState;
  readonly connected: boolean;
  /** Resolves once subscribed (waiting for a connection if need be); rejects with a RoomchatError. */
  subscribe(roomId: string, options?: SubscribeOptions): Promise<Subscription>;
  /** Resolves with the stored message, stored exactly once across reconnects. */
  publish(roomId: string, text: string, options?: PublishOptions): Promise<Message>;
  /** Ends every subscription and pending publish; the client does not reconnect. */
  close(): void;
  addEventListener(type: "state", listener: (event: StateEvent) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: "error", listener: (event: ClientErrorEvent) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}

/** Milliseconds before reconnect attempt `attempt` (0 first): random below min(10 s, 1 s * 2^attempt). */
export declare function reconnectDelay(attempt: number, random?: () => number): number;

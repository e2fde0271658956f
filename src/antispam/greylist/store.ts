/*
 * antispam/greylist/store.ts — where greylisting keeps its state: one
 * small interface (a later issue puts it on PostgreSQL, shared between
 * nodes), and the file backend (store-file.ts).
 */

export interface TripletRecord {
  /** When the triplet was first seen (ms). */
  readonly first: number;
  /** When it was last seen. */
  readonly last: number;
  /** It was retried after the delay: it passes from now on. */
  readonly passed: boolean;
}

export interface ClientRecord {
  /** Triplets of this client network that passed. */
  readonly passes: number;
  readonly last: number;
}

export interface GreylistStore {
  triplet(key: string): Promise<TripletRecord | undefined>;
  putTriplet(key: string, r: TripletRecord): Promise<void>;
  client(net: string): Promise<ClientRecord | undefined>;
  putClient(net: string, r: ClientRecord): Promise<void>;
  /** Forget records last seen before `before`. */
  expire(before: { triplets: number; pending: number; clients: number }): Promise<void>;
  /** Write what is pending and stop. */
  close(): Promise<void>;
}

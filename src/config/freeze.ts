/*
 * config/freeze.ts — making the configuration immutable.
 *
 * Object.freeze does not stop Map#set or Set#add, so maps and sets in the
 * configuration are FrozenMap / FrozenSet: real Map / Set instances (they
 * pass `instanceof Map` and iterate as usual) whose mutators throw once
 * constructed. Only Map.prototype.set.call(…) gets around that, which is
 * as far as JavaScript lets us go without giving up the Map type.
 */

export class FrozenMap<K, V> extends Map<K, V> {
  #sealed = false;

  constructor(entries?: Iterable<readonly [K, V]>) {
    super();
    for (const [k, v] of entries ?? []) super.set(k, v);
    this.#sealed = true;
  }

  override set(key: K, value: V): this {
    if (this.#sealed) throw new TypeError('the configuration is read-only');
    return super.set(key, value);
  }

  override delete(_key: K): boolean {
    throw new TypeError('the configuration is read-only');
  }

  override clear(): void {
    throw new TypeError('the configuration is read-only');
  }
}

export class FrozenSet<T> extends Set<T> {
  #sealed = false;

  constructor(values?: Iterable<T>) {
    super();
    for (const v of values ?? []) super.add(v);
    this.#sealed = true;
  }

  override add(value: T): this {
    if (this.#sealed) throw new TypeError('the configuration is read-only');
    return super.add(value);
  }

  override delete(_value: T): boolean {
    throw new TypeError('the configuration is read-only');
  }

  override clear(): void {
    throw new TypeError('the configuration is read-only');
  }
}

/** Freeze `value` and everything reachable from it (maps' keys and values, sets' members). */
export function deepFreeze<T>(value: T, seen: Set<unknown> = new Set()): T {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  if (value instanceof Map) {
    for (const [k, v] of value) {
      deepFreeze(k, seen);
      deepFreeze(v, seen);
    }
  } else if (value instanceof Set) {
    for (const v of value) deepFreeze(v, seen);
  } else {
    for (const v of Object.values(value)) deepFreeze(v, seen);
  }
  return Object.freeze(value);
}

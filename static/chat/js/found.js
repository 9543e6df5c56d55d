// The state of a message search (docs/protocol.md, "Search"), with no DOM: the query shown, its
// scope, the results held so far (newest first) and where the next page starts. The store holds
// one (`store.search`); only these methods change it, and each returns what changed.

export class SearchState {
  constructor() { this.clear(); }

  // Nothing searched yet, or a new query: a late `Found` of the one before is dropped.
  clear() {
    this.query = null;
    this.scope = null; // {chat, to}: one conversation; null: everything
    this.results = [];
    this.ids = new Set();
    this.hasMore = false;
    this.before = null;
    this.loading = false; // a page was asked for and has not come
    this.asked = null; // the `Before` of that page (null: the first)
  }

  get open() { return this.query !== null; }

  // A new query goes out: what was found before is no answer to it.
  start(query, scope) {
    this.clear();
    this.query = query;
    this.scope = scope;
    this.loading = true;
  }

  // The next page goes out; returns its `Before`, or null when there is none to ask for.
  more() {
    if (!this.open || !this.hasMore || this.loading) return null;
    this.loading = true;
    this.asked = this.before;
    return this.before;
  }

  // Whether a `Found` answers the query shown (it echoes Query, and Chat/To when given).
  answers(frame) {
    return this.open && frame.Query === this.query
      && (frame.Chat ?? null) === (this.scope?.chat ?? null) && (frame.To ?? null) === (this.scope?.to ?? null);
  }

  // Returns {added, first}: the results new to the list and whether they are its first page,
  // or null for an answer to another query.
  addFound(frame) {
    if (!this.answers(frame)) return null;
    const first = this.results.length === 0;
    const added = frame.Messages.filter((m) => !this.ids.has(m.Id));
    for (const m of added) this.ids.add(m.Id);
    this.results.push(...added);
    this.hasMore = frame.HasMore === true;
    this.before = this.hasMore ? frame.Before : null; // a page may end early: Before, not the last Id
    this.loading = false;
    return { added, first };
  }

  // The server refused the search (a query too long, a conversation one may not read).
  fail() { this.loading = false; this.hasMore = false; }

  // Messages removed: gone from the results too. Returns those that were there.
  remove(ids) {
    const gone = new Set(ids.filter((id) => this.ids.has(id)));
    if (!gone.size) return [];
    for (const id of gone) this.ids.delete(id);
    this.results = this.results.filter((m) => !gone.has(m.Id));
    return [...gone];
  }
}

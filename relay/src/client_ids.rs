//! Which client message ids may have been stored before: a Bloom filter over every
//! `(workspace, author kind, author id, client_msg_id)` the messages table and the message
//! log hold, so that the journal looks a new message's id up in SQLite's index only when
//! the filter cannot rule it out.
//!
//! Why: a client's id is unique per author and a repeat must be answered with the
//! original (docs/protocol.md), so before a message goes to the message log the journal
//! must know that its id is new. Almost every id is; proving it through the index cost a
//! fifth of the journal's thread at 10,000 msg/s (a read transaction and a descent of the
//! index per message, docs/BENCHMARKS.md, finding 29). A Bloom filter never says "absent"
//! of an id it was given, so an id it rules out is new; one it does not is looked up as
//! before (about one in a hundred new ids, and every true repeat).
//!
//! The filter grows by layers (a scalable Bloom filter): when a layer holds as many ids as
//! it was sized for, a layer twice as large takes the next ones, and a query asks every
//! layer. Ids are never removed (an erased message's id then costs one lookup). The bits
//! are bounded ([`MAX_BYTES`]): a filter that would outgrow them stops taking ids and rules
//! nothing out, so every id is looked up again, as without it.
//!
//! The ids the tables hold when the relay starts are read on a thread of their own, into a
//! filter with the same [`Seeds`] ([`ClientIdFilter::for_stored`]), while the journal's
//! filter takes the ids stored from then on; the journal [`ClientIdFilter::absorb`]s the
//! first into the second when it is read, and until then rules nothing out.

use std::hash::BuildHasher;

use kefu_proto::WorkspaceId;
use kefu_proto::frame::AuthorKind;

/// Bits per id a layer is sized with, and the bits an id sets in it: about a 1% false
/// positive rate per layer.
const BITS_PER_ID: usize = 10;
const BITS_PER_LOOKUP: u64 = 7;

/// Ids the first layer is sized for when the store holds fewer (1.2 MiB of bits).
pub const FIRST_CAPACITY: usize = 1 << 20;

/// The most the filter's bits may take: 64 MiB, some 50 million ids in one layer. Past
/// it the filter holds nothing and rules nothing out.
pub const MAX_BYTES: usize = 64 << 20;

/// A client message id as the filter knows it: the author's and the id.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub struct ClientId<'a> {
    /// The author's workspace.
    pub workspace: WorkspaceId,
    /// Customer, agent, bot or system.
    pub author: AuthorKind,
    /// Contact id or agent id of the author (none for the bot and the system).
    pub author_id: Option<i64>,
    /// The author's id for the message.
    pub client_msg_id: &'a str,
}

/// One fixed-size Bloom filter.
struct Layer {
    bits: Vec<u64>,
    /// Ids it is sized for.
    capacity: usize,
    /// Ids inserted.
    len: usize,
}

/// The 64-bit words of a layer for `capacity` ids.
fn words_for(capacity: usize) -> usize {
    (capacity * BITS_PER_ID).div_ceil(64).max(1)
}

impl Layer {
    fn new(capacity: usize) -> Layer {
        Layer { bits: vec![0; words_for(capacity)], capacity, len: 0 }
    }

    /// The bit positions of an id with hashes `(a, b)` (double hashing: `a + i·b`).
    fn positions(&self, (a, b): (u64, u64)) -> impl Iterator<Item = usize> + use<> {
        let bits = self.bits.len() as u64 * 64;
        (0..BITS_PER_LOOKUP).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % bits) as usize)
    }

    fn insert(&mut self, hashes: (u64, u64)) {
        for bit in self.positions(hashes) {
            self.bits[bit / 64] |= 1 << (bit % 64);
        }
        self.len += 1;
    }

    fn may_contain(&self, hashes: (u64, u64)) -> bool {
        self.positions(hashes).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// How a filter hashes ids: two independent hashes, seeded at random per process (ids
/// crafted to collide cannot be chosen ahead, and a collision costs only a lookup).
/// Filters that are to be [`ClientIdFilter::absorb`]ed into one another share them.
#[derive(Clone)]
pub struct Seeds {
    first: foldhash::quality::RandomState,
    second: foldhash::quality::RandomState,
}

impl Seeds {
    fn random() -> Seeds {
        Seeds { first: foldhash::quality::RandomState::default(), second: foldhash::quality::RandomState::default() }
    }
}

/// The filter: the ids given to it, and possibly others.
pub struct ClientIdFilter {
    layers: Vec<Layer>,
    seeds: Seeds,
    /// The bound on the layers' bits.
    max_bytes: usize,
    /// It would have outgrown `max_bytes`: its layers are dropped and it rules nothing out.
    full: bool,
}

impl Default for ClientIdFilter {
    fn default() -> ClientIdFilter {
        ClientIdFilter::new()
    }
}

impl ClientIdFilter {
    /// An empty filter with new seeds, its first layer sized for [`FIRST_CAPACITY`] ids,
    /// bounded by [`MAX_BYTES`].
    pub fn new() -> ClientIdFilter {
        Self::with_limits(FIRST_CAPACITY, MAX_BYTES)
    }

    /// A filter for the `stored` ids the tables hold, to be read into it and then
    /// absorbed by the filter whose `seeds` it shares, within `max_bytes` (what that one
    /// leaves of the bound: [`ClientIdFilter::room`]). Its first layer is sized for twice
    /// as many, so that it grows only after as many again. Full at once when `stored` ids
    /// would not fit: reading them would only fill it.
    pub fn for_stored(seeds: Seeds, stored: usize, max_bytes: usize) -> ClientIdFilter {
        let fits = max_bytes * 8 / BITS_PER_ID;
        let mut filter = ClientIdFilter {
            layers: vec![Layer::new(stored.saturating_mul(2).max(FIRST_CAPACITY).min(fits))],
            seeds,
            max_bytes,
            full: false,
        };
        if stored > fits {
            filter.become_full(stored);
        }
        filter
    }

    /// A filter that rules nothing out (as one past its bound is): it stands for ids that
    /// could not be read.
    pub fn full() -> ClientIdFilter {
        ClientIdFilter { layers: vec![Layer::new(0)], seeds: Seeds::random(), max_bytes: 0, full: true }
    }

    /// A first layer for `capacity` ids (fewer if that would take over `max_bytes`).
    fn with_limits(capacity: usize, max_bytes: usize) -> ClientIdFilter {
        ClientIdFilter {
            layers: vec![Layer::new(capacity.min(max_bytes * 8 / BITS_PER_ID))],
            seeds: Seeds::random(),
            max_bytes,
            full: false,
        }
    }

    /// How this filter hashes ids, for a filter it is to absorb.
    pub fn seeds(&self) -> Seeds {
        self.seeds.clone()
    }

    /// Bytes the bound leaves for the layers of a filter this one is to absorb.
    pub fn room(&self) -> usize {
        self.max_bytes.saturating_sub(self.bytes())
    }

    fn hashes(&self, id: &ClientId<'_>) -> (u64, u64) {
        // Never a step of zero, which would set one bit seven times.
        (self.seeds.first.hash_one(id), self.seeds.second.hash_one(id) | 1)
    }

    /// Drops the layers: from now on the filter rules nothing out.
    fn become_full(&mut self, ids: usize) {
        tracing::warn!(
            ids,
            max_bytes = self.max_bytes,
            "the filter of stored client ids is full: every new message's id is looked up in the index"
        );
        self.full = true;
        self.layers = vec![Layer::new(0)];
    }

    /// Adds `id`: from now on [`ClientIdFilter::may_contain`] says true for it.
    pub fn insert(&mut self, id: &ClientId<'_>) {
        if self.full {
            return;
        }
        let last = self.layers.last().expect("at least one layer");
        if last.len >= last.capacity {
            let next = last.capacity * 2;
            if self.bytes() + words_for(next) * 8 > self.max_bytes {
                self.become_full(self.count());
                return;
            }
            self.layers.push(Layer::new(next));
        }
        let hashes = self.hashes(id);
        self.layers.last_mut().expect("at least one layer").insert(hashes);
    }

    /// Takes in every id `earlier` holds (a filter made with this one's [`Seeds`], within
    /// its [`ClientIdFilter::room`]): from now on this filter may contain them too. Its
    /// layers go first; new ids still go to this one's last. Full if either is.
    pub fn absorb(&mut self, earlier: ClientIdFilter) {
        if self.full {
            return;
        }
        if earlier.full || self.bytes() + earlier.bytes() > self.max_bytes {
            self.become_full(self.count() + earlier.count());
            return;
        }
        let mut layers = earlier.layers;
        layers.append(&mut self.layers);
        self.layers = layers;
    }

    /// False only when `id` was never inserted (and the filter is not full).
    pub fn may_contain(&self, id: &ClientId<'_>) -> bool {
        if self.full {
            return true;
        }
        let hashes = self.hashes(id);
        self.layers.iter().any(|layer| layer.may_contain(hashes))
    }

    /// True once the filter would have outgrown [`MAX_BYTES`]: it rules nothing out.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Ids inserted (none once full).
    pub fn count(&self) -> usize {
        self.layers.iter().map(|layer| layer.len).sum()
    }

    /// Bytes the filter's bits take.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(|layer| layer.bits.len() * 8).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> String {
        format!("web-{n:08x}")
    }

    fn key(text: &str) -> ClientId<'_> {
        ClientId { workspace: WorkspaceId(1), author: AuthorKind::Customer, author_id: Some(7), client_msg_id: text }
    }

    #[test]
    fn every_inserted_id_is_found_across_layers_and_few_others_are() {
        // A first layer for 10,000 ids given 70,000: layers of 10, 20 and 40 thousand.
        let mut filter = ClientIdFilter::with_limits(10_000, MAX_BYTES);
        let inserted: Vec<String> = (0..70_000).map(id).collect();
        for text in &inserted {
            filter.insert(&key(text));
        }
        assert_eq!(filter.layers.len(), 3);
        assert!(inserted.iter().all(|text| filter.may_contain(&key(text))), "no false negative");
        let others: Vec<String> = (70_000..170_000).map(id).collect();
        let false_positives = others.iter().filter(|text| filter.may_contain(&key(text))).count();
        // About 1% per layer, three layers: well under 5%.
        assert!(false_positives < 5_000, "{false_positives} of 100,000 new ids not ruled out");
    }

    #[test]
    fn the_author_is_part_of_the_id() {
        let mut filter = ClientIdFilter::with_limits(1_000, MAX_BYTES);
        filter.insert(&key("web-1"));
        let elsewhere = [
            ClientId { workspace: WorkspaceId(2), ..key("web-1") },
            ClientId { author: AuthorKind::Agent, ..key("web-1") },
            ClientId { author_id: Some(8), ..key("web-1") },
            ClientId { author_id: None, ..key("web-1") },
        ];
        assert!(filter.may_contain(&key("web-1")));
        // Each could be a false positive (about 1%); all four at once would be a bug.
        assert!(elsewhere.iter().any(|other| !filter.may_contain(other)), "another author's id is ruled out");
    }

    #[test]
    fn a_filter_absorbs_the_ids_read_into_another_with_its_seeds() {
        let mut journal = ClientIdFilter::with_limits(1_000, MAX_BYTES);
        let late: Vec<String> = (0..500).map(id).collect();
        let early: Vec<String> = (500..3_000).map(id).collect();
        for text in &late[..250] {
            journal.insert(&key(text));
        }
        let mut stored = ClientIdFilter::for_stored(journal.seeds(), early.len(), journal.room());
        for text in &early {
            stored.insert(&key(text));
        }
        journal.absorb(stored);
        for text in &late[250..] {
            journal.insert(&key(text));
        }
        assert_eq!(journal.count(), 3_000);
        assert!(late.iter().chain(&early).all(|text| journal.may_contain(&key(text))), "no false negative");
        let others: Vec<String> = (3_000..13_000).map(id).collect();
        let false_positives = others.iter().filter(|text| journal.may_contain(&key(text))).count();
        assert!(false_positives < 500, "{false_positives} of 10,000 new ids not ruled out");
    }

    #[test]
    fn stored_ids_past_the_room_left_are_not_read_and_make_the_filter_full() {
        let bound = words_for(1_000) * 8 + words_for(FIRST_CAPACITY) * 8;
        let mut journal = ClientIdFilter::with_limits(1_000, bound);
        journal.insert(&key("web-1"));
        let fits = journal.room() * 8 / BITS_PER_ID;
        assert!(!ClientIdFilter::for_stored(journal.seeds(), fits, journal.room()).is_full());
        let stored = ClientIdFilter::for_stored(journal.seeds(), fits + 1, journal.room());
        assert!(stored.is_full(), "full before a single id is read");
        journal.absorb(stored);
        assert!(journal.is_full());
        assert!(journal.may_contain(&key("anything")), "it rules nothing out");
        let mut unread = ClientIdFilter::with_limits(1_000, MAX_BYTES);
        unread.absorb(ClientIdFilter::full());
        assert!(unread.is_full(), "ids that could not be read");
    }

    #[test]
    fn a_filter_that_would_outgrow_its_bound_rules_nothing_out() {
        // Room for a first layer of 1,000 ids and a second of 2,000, not a third.
        let mut filter = ClientIdFilter::with_limits(1_000, (words_for(1_000) + words_for(2_000)) * 8);
        let inserted: Vec<String> = (0..3_000).map(id).collect();
        for text in &inserted {
            filter.insert(&key(text));
        }
        assert!(!filter.is_full());
        let others: Vec<String> = (3_000..4_000).map(id).collect();
        assert!(others.iter().any(|text| !filter.may_contain(&key(text))), "below the bound it rules ids out");
        filter.insert(&key("one more"));
        assert!(filter.is_full());
        assert_eq!(filter.bytes(), 8, "its layers are dropped");
        assert!(others.iter().chain(&inserted).all(|text| filter.may_contain(&key(text))), "it rules nothing out");
    }
}

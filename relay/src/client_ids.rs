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
//! layer. Ids are never removed (an erased message's id then costs one lookup).

use std::hash::BuildHasher;

use kefu_proto::WorkspaceId;
use kefu_proto::frame::AuthorKind;

/// Bits per id a layer is sized with, and the bits an id sets in it: about a 1% false
/// positive rate per layer.
const BITS_PER_ID: usize = 10;
const BITS_PER_LOOKUP: u64 = 7;

/// Ids the first layer is sized for when the store holds fewer (1.2 MiB of bits).
pub const FIRST_CAPACITY: usize = 1 << 20;

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

impl Layer {
    fn new(capacity: usize) -> Layer {
        let words = (capacity * BITS_PER_ID).div_ceil(64).max(1);
        Layer { bits: vec![0; words], capacity, len: 0 }
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

/// The filter: the ids given to it, and possibly others.
pub struct ClientIdFilter {
    layers: Vec<Layer>,
    /// Two independent hashes, seeded at random per process: ids crafted to collide
    /// cannot be chosen ahead (and a collision costs only a lookup).
    first: foldhash::quality::RandomState,
    second: foldhash::quality::RandomState,
}

impl ClientIdFilter {
    /// An empty filter whose first layer is sized for `expected` ids (at least
    /// [`FIRST_CAPACITY`]).
    pub fn with_capacity(expected: usize) -> ClientIdFilter {
        Self::with_first_layer(expected.max(FIRST_CAPACITY))
    }

    fn with_first_layer(capacity: usize) -> ClientIdFilter {
        ClientIdFilter {
            layers: vec![Layer::new(capacity)],
            first: foldhash::quality::RandomState::default(),
            second: foldhash::quality::RandomState::default(),
        }
    }

    fn hashes(&self, id: &ClientId<'_>) -> (u64, u64) {
        // An odd step visits distinct positions whatever the layer's size.
        (self.first.hash_one(id), self.second.hash_one(id) | 1)
    }

    /// Adds `id`: from now on [`ClientIdFilter::may_contain`] says true for it.
    pub fn insert(&mut self, id: &ClientId<'_>) {
        let hashes = self.hashes(id);
        let last = self.layers.last().expect("at least one layer");
        if last.len >= last.capacity {
            let next = Layer::new(last.capacity * 2);
            self.layers.push(next);
        }
        self.layers.last_mut().expect("at least one layer").insert(hashes);
    }

    /// False only when `id` was never inserted.
    pub fn may_contain(&self, id: &ClientId<'_>) -> bool {
        let hashes = self.hashes(id);
        self.layers.iter().any(|layer| layer.may_contain(hashes))
    }

    /// Ids inserted.
    pub fn len(&self) -> usize {
        self.layers.iter().map(|layer| layer.len).sum()
    }

    /// True when no id was inserted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
        let mut filter = ClientIdFilter::with_first_layer(10_000);
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
        let mut filter = ClientIdFilter::with_first_layer(1_000);
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
}

//! Hash maps for what grows with the orders of a trading day.
//!
//! A `std` [`HashMap`] grows by moving every entry to a table twice the size,
//! in the one insert that crosses its load factor: with 100 000 orders held,
//! that insert takes tens of milliseconds (measured on the shared 2-core
//! machines: 31 ms for `String` keys, 56 ms for 200-byte values; see
//! `cargo bench -p nexus-collections`), and an order waits behind it.
//! [`ShardedMap`] spreads its entries over [`SHARDS`] independent maps by a
//! hash of the key: each grows on its own, at its own time, moving a
//! [`SHARDS`]th of the entries, so no insert pays for more than that.
//!
//! Lookups hash the key twice: once with a fast multiplicative hash, seeded
//! per map, to pick the shard, then with the shard's own hasher inside it
//! (foldhash, seeded per map and per process at random: the hash `hashbrown`
//! uses by default, some ten times cheaper than `std`'s SipHash on the short
//! keys of orders). Iteration order is unspecified, as with [`HashMap`].

use std::borrow::Borrow;
use std::collections::hash_map::{self, HashMap, RandomState};

/// The hasher of the maps inside the shards.
type Inner = foldhash::fast::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

/// A `std` [`HashMap`] hashing with foldhash, seeded per map and per process at
/// random, as the maps inside [`ShardedMap`]: for the small maps on an order's
/// path (instruments, sessions, per-instrument totals), where `std`'s SipHash
/// costs more than the lookup itself. Built with `FastHashMap::default()`.
pub type FastHashMap<K, V> = HashMap<K, V, Inner>;

/// Independent maps each [`ShardedMap`] spreads its entries over.
pub const SHARDS: usize = 64;
/// The hash bits that pick the shard (the top ones: the maps inside use
/// their own, independent hashers).
const SHIFT: u32 = u64::BITS - SHARDS.trailing_zeros();

/// The hash that picks a shard: a multiply-rotate over the key's words (as
/// rustc's FxHash), started from a per-map seed. Only spreads entries over
/// the shards; the maps inside hash with their own randomly seeded hasher, so
/// keys chosen to collide can at worst crowd one shard, which is then a plain
/// map.
struct ShardHasher(u64);

const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

impl ShardHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for ShardHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // One more round, so that the last word reaches the top bits.
        self.0.rotate_left(5).wrapping_mul(MULTIPLIER)
    }
}

/// A hash map in [`SHARDS`] parts that grow one at a time (see the crate
/// documentation). The API follows [`HashMap`]'s.
#[derive(Clone)]
pub struct ShardedMap<K, V> {
    shards: Vec<HashMap<K, V, Inner>>,
    seed: u64,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| HashMap::with_hasher(Inner::default()))
                .collect(),
            seed: RandomState::new().hash_one(0u64),
        }
    }
}

impl<K, V> ShardedMap<K, V> {
    /// An empty map; allocates nothing until the first insert of a shard.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    /// Whether the map holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }

    /// Removes every entry (the shards keep their memory, as [`HashMap::clear`]).
    pub fn clear(&mut self) {
        self.shards.iter_mut().for_each(HashMap::clear);
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flat_map(HashMap::iter)
    }

    /// Every entry, values mutable, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> + '_ {
        self.shards.iter_mut().flat_map(HashMap::iter_mut)
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.shards.iter().flat_map(HashMap::keys)
    }

    /// Every value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.shards.iter().flat_map(HashMap::values)
    }

    /// Every value, mutable, in no particular order.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.shards.iter_mut().flat_map(HashMap::values_mut)
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for shard in &mut self.shards {
            shard.retain(&mut keep);
        }
    }
}

impl<K: Eq + Hash, V> ShardedMap<K, V> {
    #[inline]
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        let mut h = ShardHasher(self.seed);
        key.hash(&mut h);
        (h.finish() >> SHIFT) as usize
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    /// The value of `key`, mutable.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.shard_of(key);
        self.shards[i].get_mut(key)
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].contains_key(key)
    }

    /// Sets the value of `key`; returns the one it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let i = self.shard_of(&key);
        self.shards[i].insert(key, value)
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let i = self.shard_of(key);
        self.shards[i].remove(key)
    }

    /// The entry of `key`, for in-place changes ([`HashMap::entry`]).
    pub fn entry(&mut self, key: K) -> hash_map::Entry<'_, K, V> {
        let i = self.shard_of(&key);
        self.shards[i].entry(key)
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Eq + Hash, V> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        map.extend(iter);
        map
    }
}

impl<K: Eq + Hash, V> Extend<(K, V)> for ShardedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Eq + Hash, V: PartialEq> PartialEq for ShardedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Eq + Hash, V: Eq> Eq for ShardedMap<K, V> {}

/// A hash set in [`SHARDS`] parts that grow one at a time: a [`ShardedMap`]
/// without values.
#[derive(Clone)]
pub struct ShardedSet<K> {
    map: ShardedMap<K, ()>,
}

impl<K> Default for ShardedSet<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash> PartialEq for ShardedSet<K> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Eq + Hash> Eq for ShardedSet<K> {}

impl<K> ShardedSet<K> {
    /// An empty set.
    #[must_use]
    pub fn new() -> Self {
        Self {
            map: ShardedMap::new(),
        }
    }

    /// Number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every member.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// Every member, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &K> + '_ {
        self.map.keys()
    }
}

impl<K: Eq + Hash> ShardedSet<K> {
    /// Adds `key`; false when it was there already.
    pub fn insert(&mut self, key: K) -> bool {
        self.map.insert(key, ()).is_none()
    }

    /// Whether `key` is a member.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Removes `key`; false when it was not there.
    pub fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key).is_some()
    }
}

impl<K: fmt::Debug> fmt::Debug for ShardedSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<K: Eq + Hash> FromIterator<K> for ShardedSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Self {
        let mut set = Self::new();
        for k in iter {
            set.insert(k);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashSet};

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Bump(u16),
        Retain(u16),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (any::<u16>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k % 512, v)),
            3 => any::<u16>().prop_map(|k| Op::Remove(k % 512)),
            3 => any::<u16>().prop_map(|k| Op::Bump(k % 512)),
            1 => any::<u16>().prop_map(|m| Op::Retain(m % 7 + 2)),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Every operation answers as a plain HashMap's does, and the contents agree.
        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec(op(), 0..400)) {
            let mut ours: ShardedMap<String, u32> = ShardedMap::new();
            let mut plain: HashMap<String, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        prop_assert_eq!(ours.insert(k.to_string(), v), plain.insert(k.to_string(), v));
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(ours.remove(k.to_string().as_str()), plain.remove(&k.to_string()));
                    }
                    Op::Bump(k) => {
                        *ours.entry(k.to_string()).or_insert(0) += 1;
                        *plain.entry(k.to_string()).or_insert(0) += 1;
                        if let Some(v) = ours.get_mut(k.to_string().as_str()) {
                            *v = v.wrapping_mul(3);
                        }
                        if let Some(v) = plain.get_mut(&k.to_string()) {
                            *v = v.wrapping_mul(3);
                        }
                    }
                    Op::Retain(m) => {
                        ours.retain(|_, v| *v % u32::from(m) != 0);
                        plain.retain(|_, v| *v % u32::from(m) != 0);
                    }
                    Op::Clear => {
                        ours.clear();
                        plain.clear();
                    }
                }
                prop_assert_eq!(ours.len(), plain.len());
                prop_assert_eq!(ours.is_empty(), plain.is_empty());
            }
            let sorted: BTreeMap<&String, &u32> = ours.iter().collect();
            prop_assert_eq!(sorted, plain.iter().collect::<BTreeMap<_, _>>());
            for (k, v) in &plain {
                prop_assert_eq!(ours.get(k.as_str()), Some(v));
                prop_assert!(ours.contains_key(k.as_str()));
            }
            prop_assert_eq!(ours.keys().count(), plain.len());
            prop_assert_eq!(ours.values().map(|v| u64::from(*v)).sum::<u64>(),
                plain.values().map(|v| u64::from(*v)).sum::<u64>());
        }
    }

    fn assert_spread<K>(map: &ShardedMap<K, ()>) {
        let sizes: Vec<usize> = map.shards.iter().map(HashMap::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 64_000);
        // 1,000 expected in each; a shard 30% off would mean a biased pick.
        assert!(sizes.iter().all(|&n| (700..1300).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn entries_spread_over_the_shards() {
        // The key shapes of the order path: sequential ids, ClOrdIDs that
        // differ in their last digits only, pairs.
        for _ in 0..3 {
            assert_spread(&(0..64_000u64).map(|k| (k, ())).collect());
            assert_spread(&(0..64_000).map(|k| (format!("ORD-{k:08}"), ())).collect());
            assert_spread(&(0..64_000).map(|k| (format!("{k}"), ())).collect());
            assert_spread(
                &(0..64_000u64)
                    .map(|k| (("S".to_owned(), k * 1024), ()))
                    .collect(),
            );
        }
    }

    #[test]
    fn set_and_equality() {
        let mut a: ShardedSet<String> = ["x", "y"].iter().map(|s| (*s).to_owned()).collect();
        assert!(!a.insert("x".into()));
        assert!(a.insert("z".into()));
        assert!(a.contains("z") && !a.contains("w"));
        assert!(a.remove("x") && !a.remove("x"));
        let members: HashSet<&String> = a.iter().collect();
        assert_eq!(members.len(), 2);
        let b: ShardedSet<String> = ["z", "y"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(a, b);
        a.clear();
        assert!(a.is_empty());
        assert_ne!(a, b);
        assert_eq!(format!("{:?}", ShardedMap::<u8, u8>::new()), "{}");
    }
}

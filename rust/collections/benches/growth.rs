//! The longest single insert while a map grows to `NEXUS_BENCH_ENTRIES`
//! entries (default 300 000), a `std` HashMap against a [`ShardedMap`] in the
//! same run, for the key and value shapes the order path keeps: ClOrdID and
//! ExecID strings, and order records by id; then the time of a lookup of
//! every key in the full map (the price of picking the shard). Medians of 5
//! rounds.
//!
//! `cargo bench -p nexus-collections --bench growth`
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::hash::Hash;
use std::hint::black_box;
use std::time::Instant;

use nexus_collections::ShardedMap;

/// About the size of an order record.
#[derive(Clone)]
struct Record {
    _fields: [u64; 24],
    _id: String,
}

/// The longest insert, ns, and the total, ns.
fn worst<K, V>(
    n: usize,
    mut insert: impl FnMut(K, V),
    make: impl Fn(usize) -> (K, V),
) -> (u64, u64) {
    let mut worst = 0u64;
    let started = Instant::now();
    for i in 0..n {
        let (k, v) = make(i);
        let t = Instant::now();
        insert(k, v);
        worst = worst.max(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    (
        worst,
        u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
    )
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Time to look every key up, ns.
fn lookups<K>(keys: &[K], mut get: impl FnMut(&K) -> bool) -> u64 {
    let started = Instant::now();
    let found = keys.iter().filter(|k| get(black_box(*k))).count();
    assert_eq!(found, keys.len());
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The two maps compared.
trait Map<K, V>: Default {
    fn put(&mut self, k: K, v: V);
    fn has(&self, k: &K) -> bool;
}

impl<K: Eq + Hash, V> Map<K, V> for HashMap<K, V> {
    fn put(&mut self, k: K, v: V) {
        self.insert(k, v);
    }
    fn has(&self, k: &K) -> bool {
        self.contains_key(k)
    }
}

impl<K: Eq + Hash, V> Map<K, V> for ShardedMap<K, V> {
    fn put(&mut self, k: K, v: V) {
        self.insert(k, v);
    }
    fn has(&self, k: &K) -> bool {
        self.contains_key(k)
    }
}

/// One round with a fresh map of kind `M`: the longest insert and all inserts
/// (as [`worst`]), then a lookup of every key, ns.
fn round<M: Map<K, V>, K, V>(
    n: usize,
    make: impl Fn(usize) -> (K, V),
    keys: &[K],
) -> (u64, u64, u64) {
    let mut map = M::default();
    let (w, t) = worst(n, |k, v| map.put(k, v), make);
    (w, t, lookups(keys, |k| map.has(k)))
}

fn compare<K: Eq + Hash, V>(name: &str, n: usize, make: impl Fn(usize) -> (K, V) + Copy) {
    let (mut plain, mut sharded, mut plain_total, mut sharded_total) =
        (vec![], vec![], vec![], vec![]);
    let (mut plain_get, mut sharded_get) = (vec![], vec![]);
    let keys: Vec<K> = (0..n).map(|i| make(i).0).collect();
    for _ in 0..5 {
        let (w, t, g) = round::<HashMap<K, V>, K, V>(n, make, &keys);
        plain.push(w);
        plain_total.push(t);
        plain_get.push(g);
        let (w, t, g) = round::<ShardedMap<K, V>, K, V>(n, make, &keys);
        sharded.push(w);
        sharded_total.push(t);
        sharded_get.push(g);
    }
    let (p, s) = (median(plain), median(sharded));
    let (pt, st) = (median(plain_total), median(sharded_total));
    let (pg, sg) = (median(plain_get), median(sharded_get));
    println!(
        "growth {name:<22} longest insert: HashMap {:>9.1} us | ShardedMap {:>7.1} us | ratio {:.3}x; all {n} inserts: {:.1} ms vs {:.1} ms ({:.2}x)",
        p as f64 / 1e3,
        s as f64 / 1e3,
        s as f64 / p as f64,
        pt as f64 / 1e6,
        st as f64 / 1e6,
        st as f64 / pt as f64,
    );
    println!(
        "growth {name:<22} lookup of every key: HashMap {:>6.1} ns | ShardedMap {:>6.1} ns | ratio {:.2}x",
        pg as f64 / n as f64,
        sg as f64 / n as f64,
        sg as f64 / pg as f64,
    );
}

fn main() {
    let n = std::env::var("NEXUS_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(300_000);
    compare("ClOrdID -> id", n, |i| (format!("ORD-{i:08}"), i as u64));
    compare("ExecID set", n, |i| (format!("EXEC-{i:010}-NEW"), ()));
    compare("id -> order record", n, |i| {
        (
            i as u64,
            Record {
                _fields: [i as u64; 24],
                _id: format!("ORD-{i:08}"),
            },
        )
    });
}

//! The cache every client thread shares.
//!
//! Objects are whole responses, keyed by the URI the client asked for. The
//! cache holds at most `capacity` bytes of them, and no object over
//! `max_object` bytes. When a new object does not fit, the least recently
//! used ones go first: every object remembers the tick of the clock when it
//! was last stored or served.
//!
//! One mutex guards the table. A thread holds it only to look an object up
//! (and mark it used) or to insert one, never while it writes to a socket:
//! an object is an `Arc`, so a reader takes its own reference and sends the
//! bytes with the lock released, and an object evicted meanwhile lives on
//! until its last reader is done. Many clients read at once; a slow client
//! holds up nobody. (C proxies get the same with a readers-writers lock, or
//! by copying the object out under the mutex.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Cache {
    capacity: usize,
    max_object: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    objects: HashMap<String, Entry>,
    /// The sum of the objects' sizes.
    size: usize,
    /// Ticks on every use; an entry's `used` is the tick of its last use.
    clock: u64,
}

struct Entry {
    bytes: Arc<[u8]>,
    used: u64,
}

impl Cache {
    pub fn new(capacity: usize, max_object: usize) -> Cache {
        Cache {
            capacity,
            max_object,
            table: Mutex::new(Table::default()),
        }
    }

    /// The largest object worth reading into memory for `insert`.
    pub fn max_object(&self) -> usize {
        self.max_object
    }

    /// The object stored for `key`, now the most recently used.
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let mut table = self.lock();
        table.clock += 1;
        let now = table.clock;
        let entry = table.objects.get_mut(key)?;
        entry.used = now;
        Some(Arc::clone(&entry.bytes))
    }

    /// Stores `bytes` for `key` if it is small enough, evicting the least
    /// recently used objects until it fits.
    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        if bytes.len() > self.max_object || bytes.len() > self.capacity {
            return;
        }
        let mut table = self.lock();
        if let Some(old) = table.objects.remove(key) {
            // Two clients fetched the same object at once; keep the newer.
            table.size -= old.bytes.len();
        }
        while table.size + bytes.len() > self.capacity {
            let oldest = table
                .objects
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
                .expect("a cache over its capacity holds objects");
            let evicted = table.objects.remove(&oldest).expect("the key was just found");
            table.size -= evicted.bytes.len();
        }
        table.clock += 1;
        let used = table.clock;
        table.size += bytes.len();
        table.objects.insert(
            key.to_string(),
            Entry {
                bytes: bytes.into(),
                used,
            },
        );
    }

    /// The table, even if a thread panicked while holding it: every update
    /// above leaves it consistent between statements that could panic.
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first() {
        let cache = Cache::new(30, 10);
        for key in ["a", "b", "c"] {
            cache.insert(key, vec![0; 10]);
        }
        assert!(cache.get("a").is_some());
        cache.insert("d", vec![1; 10]);
        assert!(cache.get("b").is_none(), "b was used least recently");
        assert!(cache.get("a").is_some() && cache.get("c").is_some() && cache.get("d").is_some());
    }

    #[test]
    fn too_large_is_not_kept() {
        let cache = Cache::new(100, 10);
        cache.insert("big", vec![0; 11]);
        assert!(cache.get("big").is_none());
    }

    #[test]
    fn a_reader_keeps_an_evicted_object() {
        let cache = Cache::new(10, 10);
        cache.insert("a", vec![7; 10]);
        let held = cache.get("a").unwrap();
        cache.insert("b", vec![8; 10]);
        assert!(cache.get("a").is_none());
        assert_eq!(&held[..], &[7; 10]);
    }
}

//! The ids chatd gives connections and rooms, and the map keyed by them
//! (below the hub, so that what the hub keeps can name them too).

use std::collections::HashMap;

/// Identifies a connection; chosen by the caller, never reused.
pub type ConnId = u64;

/// Identifies a room for its whole life; a room closed and created again under
/// the same name gets a new id. Ids grow in creation order.
pub type RoomId = u64;

/// A map keyed by connection or room id. Ids are small sequential integers
/// chosen by chatd itself, so a multiplicative (Fibonacci) hash spreads them
/// well; SipHash's flood resistance buys nothing here, and it showed up in
/// the fan-out profile (one lookup per delivery).
pub type IdMap<V> = HashMap<u64, V, BuildIdHasher>;

#[derive(Debug, Clone, Copy, Default)]
pub struct BuildIdHasher;

impl std::hash::BuildHasher for BuildIdHasher {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are used; anything else still hashes correctly.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

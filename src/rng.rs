//! Named random streams (method §0 "Randomness").
//!
//! Every random draw in darlc comes from a ChaCha8 stream derived from one user seed and a stream
//! name (`"init.vit"`, `"mask.epoch3"`, `"kmeans++"`, …). ChaCha is portable and its output is
//! fixed by its specification, so a fixture produced here is reproducible on any machine; `StdRng`
//! is never used because its algorithm may change between `rand` releases.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The generator type behind every named stream.
pub type Stream = ChaCha8Rng;

/// SplitMix64 finaliser: a bijective 64-bit mixer used to spread seed and name bits.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The 32-byte ChaCha key of stream `name` under `seed`: FNV-1a over the name, mixed with the seed
/// by SplitMix64 into four words. Documented so that a port *could* reproduce it, although fixtures
/// record realised draws and ports never need to.
pub fn stream_key(seed: u64, name: &str) -> [u8; 32] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut key = [0u8; 32];
    let mut state = splitmix64(seed ^ splitmix64(h));
    for chunk in key.chunks_mut(8) {
        state = splitmix64(state);
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    key
}

/// A fresh generator for the stream `name` under `seed`.
pub fn stream(seed: u64, name: &str) -> Stream {
    ChaCha8Rng::from_seed(stream_key(seed, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, "a"), |r, _: u64| Some(r.random()))
            .collect();
        let a2: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, "a"), |r, _: u64| Some(r.random()))
            .collect();
        let b: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(7, "b"), |r, _: u64| Some(r.random()))
            .collect();
        let c: Vec<u64> = (0..4)
            .map(|_| 0)
            .scan(stream(8, "a"), |r, _: u64| Some(r.random()))
            .collect();
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }
}

//! One run seed, split into independent named streams.
//!
//! We use our own small generator instead of `rand` or Burn's device RNG so that a run's
//! data, initial weights, masks and batch order are bit-identical on every backend and on
//! every platform (native and wasm): the URL alone must reproduce a run.

/// The named streams a run draws from. Each gets its own generator so that, for example,
/// changing the number of masked batches never shifts the initial weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Synthetic corpus / image generation and the train/validation split.
    Data,
    /// Parameter initialisation.
    Init,
    /// BERT's 15 % masking (which tokens, and the 80/10/10 choice).
    Mask,
    /// Batch order (which window / image goes into which batch).
    Order,
    /// Quantization calibration batches.
    Calib,
    /// Dropout masks (one fork per step and shard).
    Dropout,
}

impl Stream {
    fn tag(self) -> u64 {
        match self {
            Stream::Data => 0x6461_7461,
            Stream::Init => 0x696e_6974,
            Stream::Mask => 0x6d61_736b,
            Stream::Order => 0x6f72_6472,
            Stream::Calib => 0x6361_6c69,
            Stream::Dropout => 0x6472_6f70,
        }
    }
}

/// xoshiro256** seeded through SplitMix64: fast, well tested, trivially portable.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Rng { s }
    }

    /// The generator for one named stream of a run seed.
    pub fn stream(seed: u64, stream: Stream) -> Self {
        let mut st = seed ^ stream.tag().wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng::new(splitmix64(&mut st))
    }

    /// A child generator, for sub-streams (e.g. one per layer) that must not depend on
    /// how many numbers earlier users drew.
    pub fn fork(&mut self, tag: u64) -> Self {
        let mut st = self.next_u64() ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Rng::new(splitmix64(&mut st))
    }

    /// The generator's whole state, for a checkpoint: [`Rng::from_state`] continues the stream
    /// exactly where this one stands.
    pub fn state(&self) -> [u64; 4] {
        self.s
    }

    /// A generator continuing from a [`Rng::state`].
    pub fn from_state(s: [u64; 4]) -> Rng {
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next_f64()
    }

    /// Uniform integer in [0, n). `n` must be > 0. Lemire's multiply-shift (bias < 2^-32 for
    /// the sizes we use, irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() >> 32) * n as u64 >> 32) as usize
    }

    /// Standard normal via Box-Muller (one value per call; simplicity over speed). Uses the
    /// `libm` crate's ln and cos rather than the platform's, so the same seed gives the same
    /// bits natively and in the browser.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1], so ln is finite
        let u2 = self.next_f64();
        (-2.0 * libm::log(u1)).sqrt() * libm::cos(2.0 * std::f64::consts::PI * u2)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a1: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(7, Stream::Data);
                move |_| r.next_u64()
            })
            .collect();
        let a2: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(7, Stream::Data);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(7, Stream::Init);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::stream(8, Stream::Data);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, c);
    }

    #[test]
    fn a_saved_state_continues_the_stream() {
        let mut a = Rng::stream(3, Stream::Order);
        a.next_u64();
        let mut b = Rng::from_state(a.state());
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let us: Vec<f64> = (0..n).map(|_| r.next_f64()).collect();
        let mean = us.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        assert!(us.iter().all(|&u| (0.0..1.0).contains(&u)));
        let zs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let m = zs.iter().sum::<f64>() / n as f64;
        let v = zs.iter().map(|z| (z - m) * (z - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.01 && (v - 1.0).abs() < 0.02, "{m} {v}");
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[r.below(5)] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }
}

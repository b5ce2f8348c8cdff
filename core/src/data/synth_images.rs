//! A built-in image classification set for the ViT: one white shape on a dull background.
//!
//! The paper finds ViT's outliers in heads that attend to uninformative background patches
//! when they want to "do nothing". These images make that situation the rule: the shape
//! covers at most a quarter of the image, so most patches are near-uniform background, and
//! the class depends only on the shape (never on its size, position or the background).

use crate::rng::Rng;

/// Number of distinct shapes, hence the largest supported class count.
pub const MAX_CLASSES: usize = 16;
/// Smallest supported class count (a classifier needs two).
pub const MIN_CLASSES: usize = 2;
/// Supported image sides, in pixels.
pub const MIN_SIDE: usize = 8;
pub const MAX_SIDE: usize = 64;

/// Shape side as a fraction of the image side.
const SIZE_RANGE: (f64, f64) = (0.25, 0.5);
/// Background level, drawn once per image.
const BACKGROUND_RANGE: (f64, f64) = (-0.2, 0.2);
/// Shape intensity: well above any background plus noise, so the shape is always visible.
const FOREGROUND: f64 = 1.0;
/// Standard deviation of the per-pixel noise.
const NOISE_STD: f64 = 0.05;
/// Thickness of bars and strokes, as a fraction of the shape's box.
const STROKE: f64 = 1.0 / 6.0;

/// Class names, index = class id. The first four are the most distinct shapes, so small
/// class counts are easy to tell apart.
pub const CLASS_NAMES: [&str; MAX_CLASSES] = [
    "square",
    "disc",
    "plus",
    "triangle",
    "ring",
    "x",
    "vertical bar",
    "diamond",
    "frame",
    "horizontal bar",
    "L",
    "T",
    "checker",
    "half disc",
    "hollow diamond",
    "hourglass",
];

/// Single-channel images with one label each.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    /// `n * side * side` pixels, image after image, each row-major.
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    pub side: usize,
    pub classes: usize,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i`, row-major.
    pub fn image(&self, i: usize) -> &[f32] {
        let px = self.side * self.side;
        &self.images[i * px..(i + 1) * px]
    }
}

/// The name of a class, for display.
pub fn class_name(class: u32) -> &'static str {
    CLASS_NAMES.get(class as usize).copied().unwrap_or("?")
}

/// Whether the point (u, v) of the unit box (u rightwards, v downwards) belongs to `class`'s
/// shape.
fn inside(class: usize, u: f64, v: f64) -> bool {
    let (du, dv) = ((u - 0.5).abs(), (v - 0.5).abs());
    let r2 = du * du + dv * dv;
    match class {
        0 => true,
        1 => r2 <= 0.25,
        2 => du <= STROKE || dv <= STROKE,
        3 => du <= v / 2.0, // apex at the top centre, base along the bottom
        4 => (0.09..=0.25).contains(&r2),
        5 => (u - v).abs() <= STROKE || (u + v - 1.0).abs() <= STROKE,
        6 => du <= STROKE,
        7 => du + dv <= 0.5,
        8 => du.max(dv) >= 0.5 - STROKE,
        9 => dv <= STROKE,
        10 => u <= 2.0 * STROKE || v >= 1.0 - 2.0 * STROKE,
        11 => v <= 2.0 * STROKE || du <= STROKE,
        12 => (u < 0.5) == (v < 0.5),
        13 => v >= 0.5 && r2 <= 0.25,
        14 => (0.3..=0.5).contains(&(du + dv)),
        15 => du <= dv,
        _ => unreachable!("class {class} out of range"),
    }
}

/// Gaussian-like noise from the sum of three uniforms (Irwin–Hall): only additions, so it is
/// bit-identical on every platform (`Rng::normal` uses `ln` and `cos` from libm), and it is
/// bounded by three standard deviations, so noise never turns background into shape.
fn noise(rng: &mut Rng) -> f64 {
    let s = rng.next_f64() + rng.next_f64() + rng.next_f64();
    (s - 1.5) * 2.0 * NOISE_STD // the sum has standard deviation 1/2
}

/// One image of `class`: pixels and the mask of the shape's pixels.
fn render(rng: &mut Rng, side: usize, class: usize) -> (Vec<f32>, Vec<bool>) {
    let size = (side as f64 * rng.uniform(SIZE_RANGE.0, SIZE_RANGE.1) + 0.5) as usize;
    let size = size.clamp(3, side);
    let x0 = rng.below(side - size + 1);
    let y0 = rng.below(side - size + 1);
    let background = rng.uniform(BACKGROUND_RANGE.0, BACKGROUND_RANGE.1);
    let mut pixels = Vec::with_capacity(side * side);
    let mut mask = Vec::with_capacity(side * side);
    for y in 0..side {
        for x in 0..side {
            let in_box = (x0..x0 + size).contains(&x) && (y0..y0 + size).contains(&y);
            // Pixel centres in box coordinates, so small shapes stay symmetric.
            let on = in_box
                && inside(
                    class,
                    ((x - x0) as f64 + 0.5) / size as f64,
                    ((y - y0) as f64 + 0.5) / size as f64,
                );
            let level = if on { FOREGROUND } else { background };
            pixels.push((level + noise(rng)) as f32);
            mask.push(on);
        }
    }
    (pixels, mask)
}

/// `n` images of `side × side` pixels in `classes` balanced classes (class `i % classes`
/// for the i-th label, then the order shuffled), each with one shape of random size (25–50 %
/// of the side) at a random position fully inside the image.
///
/// Panics if `classes` is outside 2..=16 or `side` outside 8..=64.
pub fn generate(rng: &mut Rng, n: usize, side: usize, classes: usize) -> ImageSet {
    assert!(
        (MIN_CLASSES..=MAX_CLASSES).contains(&classes),
        "classes must be in {MIN_CLASSES}..={MAX_CLASSES}, got {classes}"
    );
    assert!(
        (MIN_SIDE..=MAX_SIDE).contains(&side),
        "side must be in {MIN_SIDE}..={MAX_SIDE}, got {side}"
    );
    let mut labels: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
    rng.shuffle(&mut labels);
    let mut images = Vec::with_capacity(n * side * side);
    for &label in &labels {
        images.extend(render(rng, side, label as usize).0);
    }
    ImageSet {
        images,
        labels,
        side,
        classes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn set(seed: u64, n: usize, side: usize, classes: usize) -> ImageSet {
        generate(&mut Rng::stream(seed, Stream::Data), n, side, classes)
    }

    #[test]
    fn labels_balanced_and_shuffled() {
        let s = set(1, 1000, 32, 10);
        assert_eq!(s.images.len(), 1000 * 32 * 32);
        let mut counts = [0usize; 10];
        for &l in &s.labels {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c == 100), "{counts:?}");
        assert_ne!(
            s.labels[..10],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            "order is shuffled"
        );
    }

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(set(3, 50, 16, 4), set(3, 50, 16, 4));
        assert_ne!(set(3, 50, 16, 4).images, set(4, 50, 16, 4).images);
    }

    #[test]
    fn background_uniform_shape_bright() {
        let mut rng = Rng::new(7);
        for i in 0..200 {
            let class = i % MAX_CLASSES;
            let (px, mask) = render(&mut rng, 32, class);
            let mut sorted = px.clone();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let median = sorted[sorted.len() / 2];
            let near = px.iter().filter(|&&p| (p - median).abs() < 0.3).count();
            assert!(near * 2 > px.len(), "class {class}: {near} near the median");
            let on: Vec<f32> = px
                .iter()
                .zip(&mask)
                .filter(|p| *p.1)
                .map(|p| *p.0)
                .collect();
            let off: Vec<f32> = px
                .iter()
                .zip(&mask)
                .filter(|p| !*p.1)
                .map(|p| *p.0)
                .collect();
            assert!(
                on.len() >= 3,
                "class {class}: shape has {} pixels",
                on.len()
            );
            let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
            assert!(mean(&on) > mean(&off) + 0.5, "class {class}");
            // Shape area at most a quarter of the image.
            assert!(on.len() * 4 <= px.len());
        }
    }

    /// Each image's shape, cut out by a square box around it and resampled to 8×8, so that
    /// position and size drop out and only the shape is left.
    fn template(img: &[f32], side: usize) -> [f32; 64] {
        let on = |x: usize, y: usize| img[y * side + x] > 0.5;
        let (mut x0, mut x1, mut y0, mut y1) = (side, 0, side, 0);
        for y in 0..side {
            for x in 0..side {
                if on(x, y) {
                    (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
                }
            }
        }
        let extent = (x1 - x0 + 1).max(y1 - y0 + 1) as f64;
        let (cx, cy) = ((x0 + x1 + 1) as f64 / 2.0, (y0 + y1 + 1) as f64 / 2.0);
        let mut t = [0.0; 64];
        for j in 0..8 {
            for i in 0..8 {
                let x = cx + ((i as f64 + 0.5) / 8.0 - 0.5) * extent;
                let y = cy + ((j as f64 + 0.5) / 8.0 - 0.5) * extent;
                if x >= 0.0 && y >= 0.0 && (x as usize) < side && (y as usize) < side {
                    t[j * 8 + i] = on(x as usize, y as usize) as u8 as f32;
                }
            }
        }
        t
    }

    #[test]
    fn classes_distinguishable() {
        // Class means of the aligned shapes differ clearly: a nearest-class-mean classifier
        // fitted on half the images gets the other half almost all right.
        let classes = MAX_CLASSES;
        let s = set(11, classes * 60, 32, classes);
        let n = s.len();
        let mut means = vec![[0.0f32; 64]; classes];
        let mut counts = vec![0usize; classes];
        for i in 0..n / 2 {
            let t = template(s.image(i), 32);
            let c = s.labels[i] as usize;
            counts[c] += 1;
            means[c].iter_mut().zip(&t).for_each(|(m, x)| *m += x);
        }
        for (mean, &count) in means.iter_mut().zip(&counts) {
            mean.iter_mut().for_each(|m| *m /= count as f32);
        }
        let dist = |a: &[f32; 64], b: &[f32; 64]| {
            a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>()
        };
        for a in 0..classes {
            for b in a + 1..classes {
                let d = dist(&means[a], &means[b]);
                assert!(
                    d > 2.0,
                    "class means {} and {} too close: {d}",
                    CLASS_NAMES[a],
                    CLASS_NAMES[b]
                );
            }
        }
        let mut correct = 0;
        for i in n / 2..n {
            let t = template(s.image(i), 32);
            let best = (0..classes)
                .min_by(|&a, &b| {
                    dist(&t, &means[a])
                        .partial_cmp(&dist(&t, &means[b]))
                        .unwrap()
                })
                .unwrap();
            correct += (best == s.labels[i] as usize) as usize;
        }
        let acc = correct as f64 / (n - n / 2) as f64;
        assert!(acc > 0.9, "nearest-mean accuracy {acc}");
    }

    #[test]
    fn all_sides_and_class_counts() {
        for &side in &[8usize, 13, 32, 64] {
            for &classes in &[2usize, 4, 16] {
                let s = set(5, 3 * classes, side, classes);
                assert_eq!(s.images.len(), 3 * classes * side * side);
                assert!(
                    s.images
                        .iter()
                        .all(|p| p.is_finite() && (-0.5..1.5).contains(p))
                );
                assert!(s.labels.iter().all(|&l| (l as usize) < classes));
                for i in 0..s.len() {
                    assert!(s.image(i).iter().any(|&p| p > 0.5), "side {side}: no shape");
                }
            }
        }
    }
}

//! A corpus larger than the in-memory limit trains from a file read by windows: the process's
//! peak memory stays far below the file's size. Alone in its test binary, so the peak is this
//! test's own.

use qtlab_core::data::MAX_FILE_BYTES;
use qtlab_core::dataset::RunData;
use qtlab_core::rng::{Rng, Stream};
use qtlab_core::spec::RunSpec;

/// Peak resident memory of this process (Linux), in MiB.
fn peak_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[test]
fn a_file_over_the_limit_is_streamed_in_bounded_memory() {
    let path = std::env::temp_dir().join(format!("qtlab-big-{}.txt", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let para = "It was the best of times, it was the worst of times; a tale.\n".repeat(64);
        let mut written = 0;
        while written <= MAX_FILE_BYTES + (8 << 20) {
            f.write_all(para.as_bytes()).unwrap();
            written += para.len();
        }
    }
    let size_mib = std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64;
    let before = peak_mib();
    let spec = RunSpec::parse(&format!(
        "model=opt&seq=64&batch=16&data=file:{}",
        path.display()
    ))
    .unwrap();
    let data = RunData::load(&spec, None).unwrap();
    assert!(
        matches!(data, RunData::Stream(_)),
        "a {size_mib:.0} MiB file must be streamed"
    );
    let mut order = Rng::stream(spec.seed, Stream::Order);
    let mut mask = Rng::stream(spec.seed, Stream::Mask);
    let a = data.train_batch(&spec, &mut order, &mut mask);
    for _ in 0..50 {
        data.train_batch(&spec, &mut order, &mut mask);
    }
    assert_eq!(a.target.len(), 16 * 64);
    assert_eq!(
        data.eval_batch(&spec, 1).target,
        data.eval_batch(&spec, 1).target
    );
    // The same seed draws the same windows.
    let mut order2 = Rng::stream(spec.seed, Stream::Order);
    assert_eq!(
        data.train_batch(&spec, &mut order2, &mut mask).target,
        a.target
    );
    if let (Some(b), Some(p)) = (before, peak_mib()) {
        assert!(
            p - b < 64.0,
            "peak memory grew {:.0} MiB reading a {size_mib:.0} MiB file",
            p - b
        );
    }
    let _ = std::fs::remove_file(&path);
}

//! Long runs and more than one device, on the CPU: a resumed run equals the uninterrupted one
//! bit for bit, a bad checkpoint is refused by name, and data parallel over two devices equals
//! two shards on one.

use burn::tensor::Device;
use qtlab_core::BackendKind;
use qtlab_core::checkpoint::Checkpoint;
use qtlab_core::dataset::RunData;
use qtlab_core::driver::{Checkpointing, Run, RunOpts};
use qtlab_core::params;
use qtlab_core::record::RunRecord;
use qtlab_core::spec::RunSpec;

/// Dropout on (its masks are per step and shard), clipped softmax with its γ ramp crossing
/// the checkpoint, evaluations on both sides of it.
const SPEC: &str = "model=bert&layers=1&d=16&heads=2&ffn=32&seq=8&batch=4&eval_batches=2\
                    &attn=clipped&gamma_warmup=4&dropout=0.1&steps=9&eval_every=3&warmup=2";

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("qtlab-scale-{}-{name}", std::process::id()))
}

fn opts(threads: usize, ck: Option<(&std::path::Path, usize)>) -> RunOpts {
    RunOpts {
        checkpoint: ck.map(|(p, every)| Checkpointing {
            path: p.to_path_buf(),
            every,
        }),
        ..RunOpts::native(BackendKind::Cpu, threads)
    }
}

fn spec() -> RunSpec {
    RunSpec::parse(SPEC).unwrap()
}

fn cpu(n: usize) -> Vec<(Device, String)> {
    (0..n)
        .map(|i| (Device::flex(), format!("cpu:{i}")))
        .collect()
}

fn finish(mut run: Run) -> (RunRecord, Vec<(String, Vec<f32>)>) {
    run.run_to_end(|_| {});
    let p = params::read(run.trainer().model()).unwrap();
    let rec = run.finish();
    assert_eq!(rec.error, None);
    (rec, p.into_iter().map(|(k, a)| (k, a.values)).collect())
}

fn bits(xs: &[(f64, f64)]) -> Vec<(u64, u64)> {
    xs.iter().map(|(a, b)| (a.to_bits(), b.to_bits())).collect()
}

fn eval_losses(r: &RunRecord) -> Vec<(usize, f64)> {
    r.evals.iter().map(|e| (e.step, e.loss)).collect()
}

#[test]
fn a_resumed_run_equals_the_uninterrupted_one_bit_for_bit() {
    for threads in [1, 2] {
        let s = spec();
        let data = || RunData::load(&s, None).unwrap();
        let (a, a_params) =
            finish(Run::new(s.clone(), data(), &Device::flex(), opts(threads, None)).unwrap());

        // Stop after step 6 (checkpoints at 3 and 6), drop everything, go on from the file.
        let path = tmp(&format!("resume-{threads}.ckpt"));
        let mut b = Run::new(
            s.clone(),
            data(),
            &Device::flex(),
            opts(threads, Some((&path, 3))),
        )
        .unwrap();
        while b.step() < 7 {
            b.advance();
        }
        drop(b);
        // The checkpoint holds step 6; the record's step 6 is redone from it.
        let resumed =
            Run::resume(s.clone(), data(), &cpu(1)[..1], opts(threads, None), &path).unwrap();
        assert_eq!(resumed.step(), 6);
        let (b, b_params) = finish(resumed);

        assert_eq!(b.losses.len(), a.losses.len());
        // Steps after the checkpoint were computed after the resume: identical bits.
        assert_eq!(
            bits(&a.losses[6..]),
            bits(&b.losses[6..]),
            "threads {threads}"
        );
        let gn = |r: &RunRecord| {
            r.grad_norms[6..]
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(gn(&a), gn(&b));
        assert_eq!(eval_losses(&a).last(), eval_losses(&b).last());
        assert_eq!(
            a.eval.as_ref().unwrap().loss.to_bits(),
            b.eval.as_ref().unwrap().loss.to_bits()
        );
        // Steps before it come from the checkpoint's JSON record.
        for (x, y) in a.losses[..6].iter().zip(&b.losses[..6]) {
            assert!((x.1 - y.1).abs() <= 1e-12 * x.1.abs(), "{x:?} vs {y:?}");
        }
        assert_eq!(a_params, b_params, "every parameter, bit for bit");
        let _ = std::fs::remove_file(&path);
    }
}

#[test]
fn a_checkpoint_of_another_run_or_shard_count_or_a_torn_file_is_refused() {
    let s = spec();
    let data = || RunData::load(&s, None).unwrap();
    let path = tmp("refuse.ckpt");
    let mut r = Run::new(
        s.clone(),
        data(),
        &Device::flex(),
        opts(1, Some((&path, 2))),
    )
    .unwrap();
    while r.step() < 2 {
        r.advance();
    }
    drop(r);
    let err = |x: Result<Run, String>| x.err().expect("refused");

    let other = RunSpec::parse(&format!("{SPEC}&seed=9")).unwrap();
    let e = err(Run::resume(
        other.clone(),
        RunData::load(&other, None).unwrap(),
        &cpu(1),
        opts(1, None),
        &path,
    ));
    assert!(e.contains("belongs to another run"), "{e}");

    let e = err(Run::resume(
        s.clone(),
        data(),
        &cpu(1),
        opts(2, None),
        &path,
    ));
    assert!(
        e.contains("1 shards per step") && e.contains("has 2"),
        "{e}"
    );

    let bytes = std::fs::read(&path).unwrap();
    let torn = tmp("torn.ckpt");
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::load(&torn).unwrap_err();
    assert!(e.contains("checksum"), "{e}");
    let mut flipped = bytes.clone();
    let k = flipped.len() - 100;
    flipped[k] ^= 1;
    std::fs::write(&torn, &flipped).unwrap();
    assert!(Checkpoint::load(&torn).unwrap_err().contains("checksum"));
    std::fs::write(&torn, b"hello").unwrap();
    assert!(
        Checkpoint::load(&torn)
            .unwrap_err()
            .contains("does not start like one")
    );
    let e = Checkpoint::load(&tmp("missing.ckpt")).unwrap_err();
    assert!(e.contains("cannot read checkpoint"), "{e}");
    // Nothing but the final file is left behind by the atomic write.
    assert!(!std::path::Path::new(&format!("{}.tmp", path.display())).exists());
    for p in [&path, &torn] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn two_devices_equal_two_shards_on_one_and_stay_close_to_one_shard() {
    let s = RunSpec::parse(&SPEC.replace("steps=9", "steps=12")).unwrap();
    let data = || RunData::load(&s, None).unwrap();
    let (two_dev, p2) =
        finish(Run::with_devices(s.clone(), data(), &cpu(2), opts(1, None)).unwrap());
    let (two_shards, p1) =
        finish(Run::new(s.clone(), data(), &Device::flex(), opts(2, None)).unwrap());
    let (one, _) = finish(Run::new(s.clone(), data(), &Device::flex(), opts(1, None)).unwrap());
    assert_eq!(two_dev.devices, ["cpu:0", "cpu:1"]);
    // Same shards, same dropout forks, same summation order: the same bits.
    assert_eq!(bits(&two_dev.losses), bits(&two_shards.losses));
    assert_eq!(p1, p2);
    // One shard sums in another order: the same run within float rounding.
    let (l2, l1) = (two_dev.eval.unwrap().loss, one.eval.unwrap().loss);
    assert!((l2 - l1).abs() <= 1e-3 * l1.abs(), "{l2} vs {l1}");
    assert_ne!(
        bits(&two_dev.losses),
        bits(&one.losses),
        "a split that changed nothing"
    );
}

//! The spec's parser, canonical string, ranges and warnings.

use super::*;

const DEFAULT_CANONICAL: &str = "v=1&model=bert&layers=2&d=64&heads=4&ffn=256&seq=32\
    &batch=16&img=32&patch=4&classes=4&patch_ln=true&attn=vanilla&gamma=-0.015&zeta=1\
    &gamma_warmup=0&gate=linear&pi=0.25&steps=300&lr=1e-3&warmup=30&sched=linear&wd=0.01\
    &ln_wd=false&b1=0.9&b2=0.999&eps=1e-8&clip=1&dropout=0&init_std=0.02&mask=0.15&seed=0\
    &data=synthetic&bb_k=3&bos=true&eval_every=50&eval_batches=8";

fn err_field(text: &str) -> String {
    match RunSpec::parse(text) {
        Ok(spec) => panic!("`{text}` was accepted: {spec:?}"),
        Err(e) => e.field,
    }
}

fn float_bits(spec: &RunSpec) -> Vec<u64> {
    [
        spec.gamma,
        spec.zeta,
        spec.alpha.unwrap_or(f64::NAN),
        spec.pi_init,
        spec.lr,
        spec.weight_decay,
        spec.beta1,
        spec.beta2,
        spec.eps,
        spec.clip,
        spec.init_std,
        spec.mask_prob,
    ]
    .iter()
    .map(|x| x.to_bits())
    .collect()
}

/// Every field differs from its default.
fn everything_changed() -> RunSpec {
    RunSpec {
        version: 1,
        model: ModelKind::Opt,
        layers: 3,
        d_model: 96,
        heads: 6,
        d_ff: 384,
        seq_len: 48,
        batch: 8,
        image: 24,
        patch: 6,
        classes: 10,
        patch_ln: false,
        attn: AttnKind::Clipped,
        gamma: -0.0234375,
        zeta: 1.003,
        alpha: Some(0.7),
        gamma_warmup: 40,
        gate: GateKind::AllHeads,
        pi_init: 0.1,
        steps: 1000,
        lr: 3e-4,
        warmup: 0,
        sched: Schedule::Const,
        weight_decay: 0.0,
        ln_wd: true,
        beta1: 0.85,
        beta2: 0.98,
        eps: 1e-6,
        clip: 0.0,
        dropout: 0.15,
        init_std: 0.035,
        mask_prob: 0.2,
        seed: 18_446_744_073_709_551_615,
        data: DataSource::File("my corpus: v2/wiki text.txt".to_owned()),
        bb_k: 5,
        bos: false,
        eval_every: 0,
        eval_batches: 3,
    }
}

#[test]
fn default_round_trips() {
    let spec = RunSpec::default();
    spec.validate().unwrap();
    let back = RunSpec::parse(&spec.to_canonical()).unwrap();
    assert_eq!(back, spec);
    assert_eq!(float_bits(&back), float_bits(&spec));
}

#[test]
fn every_field_changed_round_trips_bit_exactly() {
    let spec = everything_changed();
    spec.validate().unwrap();
    let defaults = RunSpec::default();
    for &key in KEYS.iter().filter(|&&k| k != "v") {
        assert_ne!(
            spec.get(key),
            defaults.get(key),
            "{key} is not changed by the fixture"
        );
    }
    let text = spec.to_canonical();
    assert!(text.contains("&alpha=0.7&"), "{text}");
    assert!(text.contains("&lr=3e-4&"), "{text}");
    assert!(text.contains("&gamma=-0.0234375&"), "{text}");
    assert!(
        text.contains("&data=file:my%20corpus:%20v2/wiki%20text.txt&"),
        "{text}"
    );
    let back = RunSpec::parse(&text).unwrap();
    assert_eq!(back, spec);
    assert_eq!(float_bits(&back), float_bits(&spec));
    assert_eq!(back.to_canonical(), text);
    // The encoded colon and slash forms a browser might produce decode the same way.
    let browser = text.replace("file:my%20corpus:%20v2/", "file%3Amy%20corpus%3A%20v2%2F");
    assert_eq!(RunSpec::parse(&browser).unwrap(), spec);
}

#[test]
fn awkward_floats_round_trip_bit_exactly() {
    for x in [
        1e-8_f64,
        3e-4,
        0.1 + 0.2,
        1.0 / 3.0,
        5e-324,
        1e300,
        123456.789,
        -0.0,
    ] {
        let spec = RunSpec {
            gamma: -x.abs(),
            clip: x.abs(),
            ..RunSpec::default()
        };
        let back = RunSpec::parse(&spec.to_canonical()).unwrap();
        assert_eq!(back.gamma.to_bits(), spec.gamma.to_bits(), "{x}");
        assert_eq!(back.clip.to_bits(), spec.clip.to_bits(), "{x}");
    }
    assert_eq!(format_f64(1e-8), "1e-8");
    assert_eq!(format_f64(0.25), "0.25");
    assert_eq!(format_f64(1.0), "1");
    assert_eq!(format_f64(1e6), "1e6");
}

#[test]
fn default_canonical_text_is_stable() {
    let text = RunSpec::default().to_canonical();
    assert!(text.starts_with("v=1&model=bert&"));
    assert_eq!(text, DEFAULT_CANONICAL);
    assert_eq!(RunSpec::default().to_string(), DEFAULT_CANONICAL);
}

#[test]
fn canonical_keys_follow_keys_order() {
    let mut spec = RunSpec::default();
    let keys: Vec<&str> = DEFAULT_CANONICAL
        .split('&')
        .map(|s| s.split('=').next().unwrap())
        .collect();
    let expected: Vec<&str> = KEYS.iter().copied().filter(|&k| k != "alpha").collect();
    assert_eq!(keys, expected);
    spec.alpha = Some(2.0);
    let keys: Vec<String> = spec
        .to_canonical()
        .split('&')
        .map(|s| s.split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(keys, KEYS);
}

#[test]
fn get_then_set_is_identity_for_every_key() {
    let spec = everything_changed();
    for &key in KEYS {
        let mut copy = spec.clone();
        copy.set(key, &spec.get(key).unwrap()).unwrap();
        assert_eq!(copy, spec, "{key}");
    }
    assert_eq!(spec.get("foo"), None);
}

#[test]
fn parse_accepts_prefixes_empty_segments_missing_keys_and_both_float_forms() {
    let spec = RunSpec::parse("?heads=8&&lr=0.001&").unwrap();
    assert_eq!(spec.heads, 8);
    assert_eq!(spec.lr, 1e-3);
    assert_eq!(spec.version, 1);
    let spec = RunSpec::parse("#v=1&eps=0.00000001&alpha=none&patch_ln=0").unwrap();
    assert_eq!(spec.eps, 1e-8);
    assert_eq!(spec.alpha, None);
    assert!(!spec.patch_ln);
    assert_eq!(RunSpec::parse("alpha=").unwrap().alpha, None);
    assert_eq!(RunSpec::parse("").unwrap(), RunSpec::default());
    // lr=10 is deliberately allowed: it is how divergence handling is tested.
    assert_eq!(RunSpec::parse("lr=10").unwrap().lr, 10.0);
}

#[test]
fn refusals_name_the_right_field() {
    let cases = [
        ("heads=5", "heads"),
        ("d=64&heads=32", "heads"),
        ("gamma=0.1", "gamma"),
        ("zeta=0.99", "zeta"),
        ("pi=0", "pi"),
        ("pi=1", "pi"),
        ("pi=1.5", "pi"),
        ("steps=0", "steps"),
        ("foo=1", "foo"),
        ("model=bart", "model"),
        ("attn=xyz", "attn"),
        ("d=4096&layers=48", "d"),
        ("v=2", "v"),
        ("model=opt&attn=gated&gate=cph", "gate"),
        ("v=2&newkey=1", "v"),
        ("lr=NaN", "lr"),
        ("lr=nan", "lr"),
        ("lr=inf", "lr"),
        ("lr=1e400", "lr"),
        ("lr=10.5", "lr"),
        ("img=30&patch=4", "patch"),
        ("model=vit&data=file:x.txt", "data"),
        ("model=vit&data=tinyshakespeare", "data"),
        ("data=shakespeare", "data"),
        ("model=vit&img=512&patch=4", "patch"),
        ("alpha=0", "alpha"),
        ("alpha=-1", "alpha"),
        ("heads=4&heads=8", "heads"),
        ("data=file:", "data"),
        ("data=file%ZZ", "data"),
        ("data=file:%FF", "data"),
        ("batch=4096&seq=2048&d=256", "batch"),
        ("patch_ln=yes", "patch_ln"),
        ("layers=-1", "layers"),
        ("seed=18446744073709551616", "seed"),
    ];
    for (text, field) in cases {
        assert_eq!(err_field(text), field, "{text}");
    }
}

#[test]
fn refusal_messages_say_what_was_given() {
    let e = RunSpec::parse("d=64&heads=5").unwrap_err();
    assert!(e.message.contains("64") && e.message.contains('5'), "{e}");
    assert_eq!(e.to_string(), format!("invalid `heads`: {}", e.message));

    let e = RunSpec::parse("model=bart").unwrap_err();
    assert_eq!(e.message, "expected one of bert|opt|vit, got `bart`");

    let e = RunSpec::parse("foo=1").unwrap_err();
    assert!(
        e.message.starts_with("unknown key (known keys: v, model, "),
        "{e}"
    );

    let e = RunSpec::parse("steps=0").unwrap_err();
    assert!(e.message.contains("got 0"), "{e}");

    let e = RunSpec::parse("d=4096&layers=48").unwrap_err();
    assert!(e.message.contains(&MAX_PARAMS.to_string()), "{e}");
    // BERT-base is CLI work: a valid spec that the browser refuses, naming its own limit.
    let base = RunSpec::parse("layers=12&d=768&heads=12&ffn=3072&seq=128&batch=32").unwrap();
    let e = base.validate_for_browser().unwrap_err();
    assert!(e.message.contains(&BROWSER_MAX_PARAMS.to_string()), "{e}");

    let e = RunSpec::parse("layers=2&oops").unwrap_err();
    assert_eq!(e.field, "oops");
    assert!(e.message.contains('='), "{e}");
}

#[test]
fn set_checks_its_own_range_and_leaves_self_unchanged_on_error() {
    let mut spec = RunSpec::default();
    spec.set("heads", "8").unwrap();
    assert_eq!(spec.heads, 8);
    assert_eq!(spec.set("pi", "1").unwrap_err().field, "pi");
    assert_eq!(spec.pi_init, 0.25);
    // Cross-field constraints wait for validate: heads=5 is fine on its own.
    spec.set("heads", "5").unwrap();
    assert_eq!(spec.validate().unwrap_err().field, "heads");
    assert_eq!(spec.set("nope", "1").unwrap_err().field, "nope");
}

#[test]
fn validate_rejects_non_finite_fields_built_directly() {
    let spec = RunSpec {
        lr: f64::NAN,
        ..RunSpec::default()
    };
    assert_eq!(spec.validate().unwrap_err().field, "lr");
    let spec = RunSpec {
        alpha: Some(f64::INFINITY),
        ..RunSpec::default()
    };
    assert_eq!(spec.validate().unwrap_err().field, "alpha");
    let spec = RunSpec {
        heads: 0,
        ..RunSpec::default()
    };
    assert_eq!(spec.validate().unwrap_err().field, "heads");
    let spec = RunSpec {
        data: DataSource::File("a\0b".into()),
        ..RunSpec::default()
    };
    assert_eq!(spec.validate().unwrap_err().field, "data");
}

#[test]
fn garbage_never_panics_and_accepted_specs_round_trip() {
    let long_digits = "9".repeat(5000);
    let long_text = "ä%".repeat(3000);
    let mut values: Vec<String> = [
        "",
        "-1",
        "0",
        "1",
        "2",
        "-0",
        "1e400",
        "-1e400",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "18446744073709551616",
        "4294967296",
        "99999999999999999999999",
        "ä",
        "%",
        "%zz",
        "%4",
        "%C3%A4",
        "true",
        "false",
        "none",
        "file:",
        "file:a",
        "file:%",
        "0.5",
        "1e-8",
        "+3",
        " 3",
        "0x10",
        "vit",
        "clipped",
        "mlp",
        "synthetic",
        "=",
        "&",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    values.push(long_digits);
    values.push(long_text);

    let mut accepted = 0;
    for &key in KEYS.iter().chain(["", "foo", "ä", "V"].iter()) {
        for value in &values {
            let mut spec = RunSpec::default();
            let before = spec.clone();
            match spec.set(key, value) {
                Ok(()) => {
                    if spec.validate().is_ok() {
                        accepted += 1;
                        let back = RunSpec::parse(&spec.to_canonical());
                        assert_eq!(back.as_ref(), Ok(&spec), "{key}={value}");
                    }
                }
                Err(e) => {
                    assert_eq!(spec, before, "{key}={value}");
                    assert!(!e.field.is_empty() || key.is_empty());
                    assert!(e.message.chars().count() < 1000, "{key}: {}", e.message);
                }
            }
            let _ = RunSpec::parse(&format!("{key}={value}"));
            let _ = RunSpec::parse(value);
        }
    }
    assert!(accepted > 30, "only {accepted} accepted");

    // Pseudo-random strings over an alphabet rich in separators and escapes.
    let alphabet: Vec<char> = "v=&%?#1az.-eE+äé\u{0}09ABF:/ ".chars().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..500 {
        let mut text = String::new();
        for _ in 0..(state % 24) {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            text.push(alphabet[(state >> 33) as usize % alphabet.len()]);
        }
        let _ = RunSpec::parse(&text);
        let _ = RunSpec::default().set("data", &text);
        let _ = RunSpec::default().set(&text, &text);
    }
}

#[test]
fn clipped_softmax_warnings() {
    let clipped = |alpha: f64| RunSpec {
        attn: AttnKind::Clipped,
        alpha: Some(alpha),
        seq_len: 32,
        ..RunSpec::default()
    };
    let warnings = clipped(1.0).warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("clipped to exactly zero"),
        "{}",
        warnings[0]
    );
    assert!(clipped(0.5).warnings().is_empty());

    // Fully below the threshold (the paper's alpha=4 on a short sequence), causal rows.
    let opt = RunSpec {
        model: ModelKind::Opt,
        ..clipped(4.0)
    };
    let warnings = opt.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("rows"), "{}", warnings[0]);

    // A fixed gamma that is harmless at T=32 is fatal at T=2048.
    let fixed = RunSpec {
        attn: AttnKind::Clipped,
        gamma: -0.01,
        ..RunSpec::default()
    };
    assert!(fixed.warnings().is_empty());
    let long = RunSpec {
        seq_len: 2048,
        batch: 1,
        ..fixed
    };
    assert_eq!(long.warnings().len(), 1);

    for alpha in [0.5, 1.0, 4.0, 100.0] {
        let vanilla = RunSpec {
            attn: AttnKind::Vanilla,
            ..clipped(alpha)
        };
        assert!(vanilla.warnings().is_empty(), "{alpha}");
    }
}

#[test]
fn high_lr_without_warmup_warns() {
    let spec = RunSpec {
        warmup: 0,
        lr: 0.1,
        ..RunSpec::default()
    };
    assert_eq!(spec.warnings().len(), 1);
    assert!(
        RunSpec {
            warmup: 1,
            ..spec.clone()
        }
        .warnings()
        .is_empty()
    );
    assert!(RunSpec { lr: 1e-2, ..spec }.warnings().is_empty());
}

#[test]
fn fingerprint_is_eight_hex_chars_and_tracks_the_spec() {
    let a = RunSpec::default();
    let b = RunSpec::default();
    let c = RunSpec {
        seed: 1,
        ..RunSpec::default()
    };
    let fa = a.fingerprint();
    assert_eq!(fa.len(), 8);
    assert!(
        fa.chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
    );
    assert_eq!(fa, b.fingerprint());
    assert_ne!(fa, c.fingerprint());
    // FNV-1a 64 of the empty string is cbf29ce484222325; check the algorithm itself.
    let fnv = |s: &str| {
        s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    };
    assert_eq!(fnv("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fa, format!("{:08x}", fnv(DEFAULT_CANONICAL) & 0xffff_ffff));
}

#[test]
fn derived_quantities() {
    let spec = RunSpec::default();
    assert_eq!(spec.seq_tokens(), 32);
    assert_eq!(spec.d_head(), 16);
    assert_eq!(spec.gamma_effective(), -0.015);
    let vit = RunSpec {
        model: ModelKind::Vit,
        alpha: Some(2.0),
        ..RunSpec::default()
    };
    assert_eq!(vit.seq_tokens(), 65);
    assert_eq!(vit.gamma_effective(), -2.0 / 65.0);
    // Per block: 4*64*64 + 4*64 + 2*64*256 + 256 + 64 + 4*64 = 49984; two blocks,
    // plus 32*64 positions and 256*64 token embeddings.
    assert_eq!(spec.param_count_estimate(), 2 * 49_984 + 32 * 64 + 256 * 64);
    // Unvalidated nonsense must not panic.
    let weird = RunSpec {
        model: ModelKind::Vit,
        patch: 0,
        heads: 0,
        d_model: usize::MAX,
        ..spec
    };
    assert_eq!(weird.d_head(), 0);
    assert_eq!(weird.seq_tokens(), 1);
    assert_eq!(weird.param_count_estimate(), usize::MAX);
}

#[test]
fn enum_text_round_trips() {
    for m in ModelKind::ALL {
        assert_eq!(m.to_string().parse::<ModelKind>(), Ok(*m));
    }
    for a in AttnKind::ALL {
        assert_eq!(a.to_string().parse::<AttnKind>(), Ok(*a));
    }
    for g in GateKind::ALL {
        assert_eq!(g.to_string().parse::<GateKind>(), Ok(*g));
    }
    assert_eq!(GateKind::UnconditionalPerHead.to_string(), "uph");
    assert!("Linear".parse::<GateKind>().is_err());
    for d in [
        DataSource::Synthetic,
        DataSource::Shakespeare,
        DataSource::File("tinyshakespeare".into()),
    ] {
        assert_eq!(d.to_string().parse::<DataSource>(), Ok(d.clone()));
    }
    let spec = RunSpec::parse("data=tinyshakespeare").unwrap();
    assert_eq!(spec.data, DataSource::Shakespeare);
    assert!(spec.to_canonical().contains("data=tinyshakespeare"));
}

#[test]
fn bigram_backcopy_sources_round_trip_and_refuse_nesting() {
    for (text, canonical) in [
        ("bb", "bb"),
        ("bb:tinyshakespeare", "bb"),
        ("bb:synthetic", "bb:synthetic"),
        ("bb:file:my text.txt", "bb:file:my text.txt"),
    ] {
        let d: DataSource = text.parse().unwrap();
        assert!(d.is_bigram_backcopy(), "{text}");
        assert_eq!(d.to_string(), canonical);
        assert_eq!(canonical.parse::<DataSource>().unwrap(), d);
    }
    let f: DataSource = "bb:file:a.txt".parse().unwrap();
    assert_eq!(f.file_name(), Some("a.txt"));
    assert_eq!(f.text_source(), &DataSource::File("a.txt".into()));
    for bad in ["bb:bb", "bb:bb:synthetic", "bb:", "bb:nonsense", "bb:file:"] {
        assert!(bad.parse::<DataSource>().is_err(), "{bad} accepted");
    }
    let spec = RunSpec::parse("model=opt&data=bb%3Asynthetic&bb_k=1&sched=const").unwrap();
    assert_eq!(spec.bb_k, 1);
    assert_eq!(spec.sched, Schedule::Const);
    assert_eq!(RunSpec::parse(&spec.to_canonical()).unwrap(), spec);
    assert_eq!(RunSpec::parse("bb_k=0").unwrap_err().field, "bb_k");
    assert_eq!(RunSpec::parse("bb_k=17").unwrap_err().field, "bb_k");
    assert_eq!(RunSpec::parse("sched=cosine").unwrap_err().field, "sched");
    assert_eq!(RunSpec::parse("ln_wd=maybe").unwrap_err().field, "ln_wd");
    assert_eq!(
        RunSpec::parse("model=vit&data=bb").unwrap_err().field,
        "data"
    );
}

#[test]
fn gamma_warm_up_silences_the_dead_start_warning() {
    let dead = RunSpec::parse("attn=clipped&alpha=2").unwrap();
    assert!(!dead.warnings().is_empty());
    let warmed = RunSpec::parse("attn=clipped&alpha=2&gamma_warmup=100").unwrap();
    assert!(warmed.warnings().is_empty(), "{:?}", warmed.warnings());
}

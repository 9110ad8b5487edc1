use super::*;

fn transfers(path: PathKind, direction: Direction, samples: &[f64], cpu: f64) -> BulkResult {
    BulkResult {
        path,
        label: path.label(),
        direction,
        size_bytes: 256 << 20,
        runs: samples.len(),
        mib_s_median: crate::stats::median(samples),
        mib_s_samples: samples.to_vec(),
        gateway_cpu_s_per_gib: cpu,
        machine_cpu_s_per_gib: 4.0,
    }
}

fn rtt(path: PathKind, pty: bool, p50_us: f64, p99_us: f64) -> RttResult {
    RttResult {
        path,
        label: path.label(),
        pty,
        samples: 200,
        p50_us,
        p99_us,
        min_us: p50_us / 2.0,
        gateway_cpu_us_p50: 60.0,
        bastion_cpu_us_p50: 60.0,
    }
}

fn connect(path: PathKind, median_ms: f64, cpu_ms: f64) -> ConnectResult {
    ConnectResult {
        path,
        label: path.label(),
        runs: 50,
        min_ms: median_ms * 0.9,
        median_ms,
        p95_ms: median_ms * 1.2,
        gateway_cpu_ms_per_conn: cpu_ms,
        samples_ms: vec![median_ms],
    }
}

fn judge(
    connect: &[ConnectResult],
    bulk: &[BulkResult],
    rtt: &[RttResult],
    concurrency: Option<&ConcurrencyResult>,
) -> Vec<Verdict> {
    super::judge(&Figures {
        connect,
        bulk,
        rtt,
        concurrency,
        direct_on_one_core: false,
    })
}

fn find<'a>(verdicts: &'a [Verdict], goal: &str, subject: &str) -> &'a Verdict {
    verdicts
        .iter()
        .find(|v| v.goal.starts_with(goal) && v.subject == subject)
        .unwrap_or_else(|| panic!("no verdict for {goal} on {subject}: {verdicts:#?}"))
}

#[test]
fn throughput_is_judged_on_the_medians_with_each_rounds_ratio_beside_it() {
    let down = Direction::Download;
    let figures = [
        transfers(
            PathKind::Proxyjump,
            down,
            &[200.0, 250.0, 200.0, 250.0],
            0.0,
        ),
        // Medians 300 / 225 = 1.33: missed, though two rounds of four met it.
        transfers(
            PathKind::VestibuleJ,
            down,
            &[300.0, 300.0, 300.0, 300.0],
            1.8,
        ),
        // Medians 330 / 225 = 1.47: met, in the same two rounds only.
        transfers(
            PathKind::Vestibule,
            down,
            &[330.0, 330.0, 330.0, 330.0],
            2.2,
        ),
    ];
    let v = judge(&[], &figures, &[], None);

    let j = find(&v, "throughput", "vestibule (-J), download");
    assert!((j.value - 300.0 / 225.0).abs() < 1e-9);
    assert!(!j.met);
    let r = j.rounds.as_ref().expect("rounds");
    assert_eq!((r.met, r.of), (2, 4));
    assert!((r.min - 1.2).abs() < 1e-9 && (r.max - 1.5).abs() < 1e-9);

    let ut = find(&v, "throughput", "vestibule (user:target), download");
    assert!(ut.met);
    assert_eq!(ut.rounds.as_ref().map(|r| r.met), Some(2));

    // The CPU bound is its own verdict: 2.2 s per GiB misses it, 1.8 meets it.
    assert!(
        !find(
            &v,
            "gateway CPU per GiB",
            "vestibule (user:target), download"
        )
        .met
    );
    assert!(find(&v, "gateway CPU per GiB", "vestibule (-J), download").met);
    // No uploads were measured, so none are judged.
    assert!(v.iter().all(|v| !v.subject.ends_with("upload")));
}

#[test]
fn recording_cost_compares_the_recording_gateway_with_the_one_that_does_not_record() {
    let up = Direction::Upload;
    let figures = [
        transfers(PathKind::Vestibule, up, &[380.0, 460.0], 1.0),
        transfers(PathKind::VestibuleUnrecorded, up, &[400.0, 400.0], 0.9),
    ];
    let v = judge(&[], &figures, &[], None);
    let kept = find(&v, "throughput kept", "user:target, upload");
    // Medians 420 / 400: recording cost nothing; one round lost 5 %.
    assert!(kept.met);
    assert_eq!(kept.rounds.as_ref().map(|r| (r.met, r.of)), Some((2, 2)));
    assert_eq!(kept.sense, Sense::AtLeast);

    let slow = [
        transfers(PathKind::Vestibule, up, &[340.0, 350.0], 1.0),
        transfers(PathKind::VestibuleUnrecorded, up, &[400.0, 400.0], 0.9),
    ];
    let v = judge(&[], &slow, &[], None);
    let kept = find(&v, "throughput kept", "user:target, upload");
    assert!(!kept.met, "{kept:?}");
    assert_eq!(kept.rounds.as_ref().map(|r| r.met), Some(0));

    // Without the second gateway (`--recording on`) there is nothing to judge.
    let v = judge(&[], &slow[..1], &[], None);
    assert!(v.iter().all(|v| !v.goal.starts_with("throughput kept")));
}

#[test]
fn round_trips_are_held_to_proxyjumps_p99_and_directs_p50() {
    let rtts = [
        rtt(PathKind::Direct, false, 150.0, 210.0),
        rtt(PathKind::Proxyjump, false, 290.0, 430.0),
        rtt(PathKind::Vestibule, false, 230.0, 450.0),
        rtt(PathKind::VestibuleJ, false, 260.0, 390.0),
        rtt(PathKind::Direct, true, 180.0, 290.0),
        rtt(PathKind::Proxyjump, true, 320.0, 480.0),
        rtt(PathKind::Vestibule, true, 265.0, 470.0),
    ];
    let v = judge(&[], &[], &rtts, None);

    let ut = find(&v, "round-trip p99", "vestibule (user:target)");
    assert_eq!((ut.value, ut.bound, ut.met), (450.0, 430.0, false));
    assert!(find(&v, "round-trip p99", "vestibule (-J)").met);
    assert!(find(&v, "round-trip p99", "vestibule (user:target), PTY").met);

    // 80 µs over direct meets the bound; 110 misses it.
    let p50 = find(&v, "round-trip p50", "vestibule (user:target)");
    assert_eq!((p50.value, p50.met), (80.0, true));
    assert!(!find(&v, "round-trip p50", "vestibule (-J)").met);
    assert!(find(&v, "round-trip p50", "vestibule (user:target), PTY").met);
    // -J was not measured with a PTY here.
    assert!(v.iter().all(|v| v.subject != "vestibule (-J), PTY"));

    // With direct's two processes on one core, only ProxyJump is a measure.
    let split = super::judge(&Figures {
        connect: &[],
        bulk: &[],
        rtt: &rtts,
        concurrency: None,
        direct_on_one_core: true,
    });
    assert!(split.iter().all(|v| !v.goal.starts_with("round-trip p50")));
    assert_eq!(
        split
            .iter()
            .filter(|v| v.goal.starts_with("round-trip p99"))
            .count(),
        3
    );
}

#[test]
fn connects_and_idle_sessions() {
    let conns = [
        connect(PathKind::Proxyjump, 360.0, 1.4),
        connect(PathKind::Vestibule, 50.0, 6.0),
        connect(PathKind::VestibuleJ, 150.0, 16.0),
    ];
    let idle = ConcurrencyResult {
        path: PathKind::Vestibule,
        sessions: 1000,
        max_in_flight: 64,
        open_secs: 20.0,
        sessions_per_sec: 50.0,
        gateway_cpu_ms_per_session: 3.4,
        rss_before_kib: 39_000,
        rss_after_kib: 87_000,
        rss_after_close_kib: 110_000,
        kib_per_session: 48.0,
    };
    let v = judge(&conns, &[], &[], Some(&idle));

    assert!(find(&v, "connect median", "vestibule (user:target)").met);
    // 150 / 360 = 0.42, over 0.4.
    assert!(!find(&v, "connect median", "vestibule (-J)").met);
    assert!(find(&v, "gateway CPU per connection", "vestibule (user:target)").met);
    assert!(!find(&v, "gateway CPU per connection", "vestibule (-J)").met);
    assert!(find(&v, "gateway RSS", "vestibule (user:target), 1000 sessions").met);
}

#[test]
fn a_figure_that_could_not_be_computed_meets_no_goal() {
    let up = Direction::Upload;
    let figures = [
        transfers(PathKind::Proxyjump, up, &[], 0.0),
        transfers(PathKind::Vestibule, up, &[300.0], f64::NAN),
    ];
    let v = judge(&[], &figures, &[], None);
    assert!(v.iter().all(|v| !v.met), "{v:#?}");
}

#[test]
fn the_table_counts_what_was_met_and_marks_what_was_not() {
    let conns = [
        connect(PathKind::Proxyjump, 360.0, 1.4),
        connect(PathKind::Vestibule, 200.0, 6.0),
    ];
    let v = judge(&conns, &[], &[], None);
    let table = markdown(&v);
    assert!(table.starts_with("Goals, judged on this run's figures: 1 of 2 met."));
    assert!(table.contains("| connect median over ProxyJump's (×) | vestibule (user:target) | 0.56 | ≤ 0.40 | **no** |"), "{table}");
    assert!(
        table.contains(
            "| gateway CPU per connection (ms) | vestibule (user:target) | 6.00 | ≤ 15.00 | yes |"
        ),
        "{table}"
    );
    assert!(markdown(&[]).is_empty());
}

//! Process and tokio runtime metrics: the process figures are this process's own (checked
//! against `/proc/self/status`, `getrusage` and `getrlimit`), the runtime figures are those of
//! the registered runtime, and the lite server reports the runtime it runs on.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use streamhouse_observability::Telemetry;
use streamhouse_observability::catalog::{self, MetricDef};
use support::lite::{start, test_config};
use tokio::sync::watch;

/// The value of the label-less series `def` in a text exposition, if present.
fn value(body: &str, def: &MetricDef) -> Option<f64> {
    let prefix = format!("{} ", def.prometheus_name);
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.trim().parse().expect("a number"))
}

fn read(telemetry: &Telemetry, def: &MetricDef) -> f64 {
    let body = telemetry.render_prometheus();
    value(&body, def).unwrap_or_else(|| panic!("no {} in\n{body}", def.prometheus_name))
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    const MIB: f64 = (1 << 20) as f64;

    fn vm_rss_bytes() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024.0
    }

    fn rusage_cpu_seconds() -> f64 {
        // SAFETY: getrusage only writes the struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
            usage
        };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    fn thread_cpu_seconds() -> f64 {
        // SAFETY: clock_gettime only writes the struct it is given.
        let now = unsafe {
            let mut now: libc::timespec = std::mem::zeroed();
            assert_eq!(
                libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now),
                0
            );
            now
        };
        now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
    }

    #[test]
    fn resident_memory_is_what_the_kernel_reports() {
        let telemetry = support::telemetry();
        // Touched, so resident: the figure must account for it.
        let held = vec![1u8; 64 << 20];
        let before = vm_rss_bytes();
        let reported = read(&telemetry, &catalog::PROCESS_RESIDENT_MEMORY);
        let after = vm_rss_bytes();
        // Other tests of this binary allocate concurrently: allow a margin around the bracket.
        let margin = 16.0 * MIB;
        assert!(
            reported >= before.min(after) - margin && reported <= before.max(after) + margin,
            "reported {reported}, VmRSS {before}..{after}"
        );
        assert!(reported >= held.len() as f64, "{reported}");
    }

    #[test]
    fn cpu_seconds_are_user_plus_system_time() {
        let telemetry = support::telemetry();
        let first = read(&telemetry, &catalog::PROCESS_CPU);
        let spin_from = thread_cpu_seconds();
        while thread_cpu_seconds() - spin_from < 0.3 {
            std::hint::black_box(spin_from);
        }
        let before = rusage_cpu_seconds();
        let reported = read(&telemetry, &catalog::PROCESS_CPU);
        let after = rusage_cpu_seconds();
        // The kernel truncates user and system time to clock ticks (10 ms at 100 Hz) each.
        let tick = 0.021;
        assert!(
            reported >= before - tick && reported <= after + tick,
            "reported {reported}, getrusage {before}..{after}"
        );
        assert!(reported - first >= 0.3 - tick, "{first} -> {reported}");
    }

    #[test]
    fn file_descriptors_count_what_is_open_up_to_the_limit() {
        let telemetry = support::telemetry();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        let max = read(&telemetry, &catalog::PROCESS_MAX_FDS);
        assert_eq!(max, limit.rlim_cur as f64);

        let baseline = read(&telemetry, &catalog::PROCESS_OPEN_FDS);
        assert!(baseline >= 3.0, "stdin, stdout and stderr: {baseline}");
        let held: Vec<std::fs::File> = (0..32)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let open = read(&telemetry, &catalog::PROCESS_OPEN_FDS);
        // Other tests of this binary open and close sockets meanwhile: 8 of slack.
        assert!(
            open >= baseline + held.len() as f64 - 8.0,
            "{baseline} -> {open}"
        );
        assert!(open <= max, "{open} > {max}");
    }

    #[test]
    fn threads_include_those_alive_now() {
        let telemetry = support::telemetry();
        let release = Arc::new(std::sync::Barrier::new(9));
        let parked: Vec<_> = (0..8)
            .map(|_| {
                let release = Arc::clone(&release);
                std::thread::spawn(move || {
                    release.wait();
                })
            })
            .collect();
        let tasks = || std::fs::read_dir("/proc/self/task").unwrap().count() as f64;
        let before = tasks();
        let threads = read(&telemetry, &catalog::PROCESS_THREADS);
        let after = tasks();
        release.wait();
        parked.into_iter().for_each(|t| t.join().unwrap());
        // This test's thread, the main thread and the 8 parked ones.
        assert!(threads >= 10.0, "{threads}");
        // Other tests start and stop threads meanwhile: 8 of slack around the bracket.
        assert!(
            threads >= before.min(after) - 8.0 && threads <= before.max(after) + 8.0,
            "{threads} threads, /proc/self/task {before}..{after}"
        );
    }
}

#[test]
fn runtime_figures_are_those_of_the_latest_live_registration() {
    let telemetry = support::telemetry();
    let workers = |t: &Telemetry| value(&t.render_prometheus(), &catalog::RUNTIME_WORKERS);
    assert_eq!(workers(&telemetry), None, "no runtime registered yet");

    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .build()
        .unwrap();
    let first = telemetry.process().observe_runtime(multi.handle().clone());
    assert_eq!(workers(&telemetry), Some(3.0));

    // A current-thread runtime nobody drives: what is spawned on it waits in the global queue.
    let idle = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let second = telemetry.process().observe_runtime(idle.handle().clone());
    let queued: Vec<_> = (0..5).map(|_| idle.spawn(async {})).collect();
    assert_eq!(workers(&telemetry), Some(1.0));
    assert_eq!(read(&telemetry, &catalog::RUNTIME_GLOBAL_QUEUE_DEPTH), 5.0);
    assert_eq!(read(&telemetry, &catalog::RUNTIME_ALIVE_TASKS), 5.0);
    drop(second);
    drop(queued);

    assert_eq!(workers(&telemetry), Some(3.0));
    let (wake, woken) = watch::channel(false);
    let waiting: Vec<_> = (0..7)
        .map(|_| {
            let mut woken = woken.clone();
            multi.spawn(async move { woken.wait_for(|&w| w).await.map(|_| ()) })
        })
        .collect();
    assert_eq!(read(&telemetry, &catalog::RUNTIME_ALIVE_TASKS), 7.0);
    wake.send(true).unwrap();
    multi.block_on(async {
        for task in waiting {
            task.await.unwrap().unwrap();
        }
    });
    // A task leaves the count just after its join handle sees the output.
    let deadline = Instant::now() + Duration::from_secs(5);
    while read(&telemetry, &catalog::RUNTIME_ALIVE_TASKS) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "tasks still alive after they finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    drop(first);
    assert_eq!(workers(&telemetry), None, "the registration is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lite_server_reports_the_runtime_it_runs_on() {
    let server = start(test_config(), Arc::new(InMemory::new())).await;
    let runtime = tokio::runtime::Handle::current().metrics();
    let metrics = server.metrics().await;
    let workers = metrics.find(&catalog::RUNTIME_WORKERS, "", &[]);
    assert_eq!(workers, Some(runtime.num_workers() as f64));
    assert_eq!(workers, Some(2.0));
    // The server's own tasks (writer pool, flusher, connection) are alive.
    let alive = metrics.find(&catalog::RUNTIME_ALIVE_TASKS, "", &[]);
    assert!(alive.is_some_and(|n| n >= 1.0), "{alive:?}");
    assert!(
        metrics
            .find(&catalog::RUNTIME_GLOBAL_QUEUE_DEPTH, "", &[])
            .is_some()
    );
    if cfg!(target_os = "linux") {
        for def in [
            &catalog::PROCESS_RESIDENT_MEMORY,
            &catalog::PROCESS_CPU,
            &catalog::PROCESS_OPEN_FDS,
            &catalog::PROCESS_MAX_FDS,
            &catalog::PROCESS_THREADS,
        ] {
            let reported = metrics.find(def, "", &[]);
            assert!(reported.is_some_and(|v| v > 0.0), "{def:?}: {reported:?}");
        }
    }
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("shutdown");
}

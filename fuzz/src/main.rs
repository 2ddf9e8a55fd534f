//! `ferrocorn-fuzz`: long fuzz runs of every decoder target.
//!
//! ```text
//! cargo run --release -p ferrocorn-fuzz -- [--inputs N] [--seed S] [--target NAME] [--threads T]
//! cargo run --release -p ferrocorn-fuzz -- --target NAME --seed S --index I   # replay one input
//! ```
//!
//! A failing input aborts the run (the profile aborts on panic) after the
//! panic hook prints the target, seed and index that reproduce it, and the
//! input's bytes in hex. A watchdog aborts the same way when one input runs
//! for more than `HANG_SECS` (a loop).

use std::cell::Cell;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrocorn_fuzz::{target, Target, TARGETS};

/// One input taking longer than this is a hang.
const HANG_SECS: u64 = 30;

thread_local! {
    /// (target index, input index) being run on this thread, for the panic hook.
    static CURRENT: Cell<Option<(usize, u64)>> = const { Cell::new(None) };
}

struct Args {
    inputs: u64,
    seed: u64,
    targets: Vec<&'static Target>,
    threads: u64,
    index: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        inputs: 1_000_000,
        seed: 1,
        targets: TARGETS.iter().collect(),
        threads: 1,
        index: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--inputs" => args.inputs = number(value()?)?,
            "--seed" => args.seed = number(value()?)?,
            "--threads" => args.threads = number(value()?)?.max(1),
            "--index" => args.index = Some(number(value()?)?),
            "--target" => {
                let name = value()?;
                args.targets = vec![target(&name).ok_or(format!("no target {name}"))?];
            }
            "-h" | "--help" => {
                let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
                return Err(format!(
                    "usage: ferrocorn-fuzz [--inputs N] [--seed S] [--target {}] [--threads T] [--index I]",
                    names.join("|")
                ));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn target_index(t: &Target) -> usize {
    TARGETS
        .iter()
        .position(|x| std::ptr::eq(x, t))
        .expect("a listed target")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(t: usize, seed: u64, index: u64) -> String {
    let target = &TARGETS[t];
    let input = target.input(seed, index);
    format!(
        "reproduce: cargo run --release -p ferrocorn-fuzz -- --target {} --seed {seed} --index {index}\n\
         input ({} bytes, cuts {:?}): {}",
        target.name,
        input.stream.len(),
        input.cuts,
        hex(&input.stream)
    )
}

fn install_panic_hook(seed: u64) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if let Some((t, index)) = CURRENT.with(Cell::get) {
            eprintln!(
                "FUZZ FAILURE in {}\n{}",
                TARGETS[t].name,
                describe(t, seed, index)
            );
        }
    }));
}

/// Runs `inputs` inputs of one target over `threads` threads, with a
/// watchdog on each thread's progress.
fn run_target(t: &'static Target, seed: u64, inputs: u64, threads: u64) -> u64 {
    let ti = target_index(t);
    let progress: Arc<Vec<AtomicU64>> =
        Arc::new((0..threads).map(|_| AtomicU64::new(u64::MAX)).collect());
    let done = Arc::new(AtomicU64::new(0));
    let watchdog = {
        let progress = Arc::clone(&progress);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut last: Vec<(u64, Instant)> =
                (0..threads).map(|_| (u64::MAX, Instant::now())).collect();
            while done.load(Ordering::Relaxed) < threads {
                std::thread::sleep(Duration::from_millis(500));
                for (i, slot) in progress.iter().enumerate() {
                    let now = slot.load(Ordering::Relaxed);
                    if now != last[i].0 {
                        last[i] = (now, Instant::now());
                    } else if now != u64::MAX
                        && last[i].1.elapsed() > Duration::from_secs(HANG_SECS)
                    {
                        eprintln!(
                            "FUZZ HANG in {}: one input ran over {HANG_SECS}s\n{}",
                            TARGETS[ti].name,
                            describe(ti, seed, now)
                        );
                        std::process::abort();
                    }
                }
            }
        })
    };
    let per = inputs.div_ceil(threads);
    let workers: Vec<_> = (0..threads)
        .map(|w| {
            let progress = Arc::clone(&progress);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let (from, to) = ((w * per).min(inputs), ((w + 1) * per).min(inputs));
                let mut bytes = 0;
                for index in from..to {
                    progress[w as usize].store(index, Ordering::Relaxed);
                    CURRENT.with(|c| c.set(Some((ti, index))));
                    bytes += t.run_range(seed, index, index + 1);
                }
                CURRENT.with(|c| c.set(None));
                progress[w as usize].store(u64::MAX, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                bytes
            })
        })
        .collect();
    let bytes = workers
        .into_iter()
        .map(|w| w.join().expect("aborts on panic"))
        .sum();
    watchdog.join().expect("watchdog");
    bytes
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    install_panic_hook(args.seed);
    if let Some(index) = args.index {
        for t in &args.targets {
            let ti = target_index(t);
            println!("{}", describe(ti, args.seed, index));
            CURRENT.with(|c| c.set(Some((ti, index))));
            t.run_range(args.seed, index, index + 1);
            println!("{}: ok", t.name);
        }
        return ExitCode::SUCCESS;
    }
    let mut total = 0;
    for t in &args.targets {
        let start = Instant::now();
        let bytes = run_target(t, args.seed, args.inputs, args.threads);
        let secs = start.elapsed().as_secs_f64();
        total += args.inputs;
        println!(
            "{:<16} {:>12} inputs  {:>8.1} MB  {:>7.1} s  {:>9.0} inputs/s  seed {}  ok",
            t.name,
            args.inputs,
            bytes as f64 / 1e6,
            secs,
            args.inputs as f64 / secs,
            args.seed
        );
    }
    println!("total {total} inputs, no failure");
    ExitCode::SUCCESS
}

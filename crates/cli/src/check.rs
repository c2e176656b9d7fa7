//! `weft validate` and `weft analyze`: load config, run Istio's rules, print one line per
//! problem, and exit non-zero when anything is refused.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use weft_api::{LoadOptions, Loaded, Report, Severity};

/// What both commands read.
#[derive(Args)]
pub struct Input {
    /// Files or directories to read (`*.yaml`, `*.yml`, `*.json`, recursively); `-` reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// The same as -f, for convenience.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Treat unknown fields as errors rather than warnings.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    input: Input,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    input: Input,
    /// Exit non-zero when a message at this level or worse is found.
    #[arg(long, value_enum, default_value = "error")]
    failure_threshold: Threshold,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Threshold {
    Error,
    Warning,
    Info,
}

impl Threshold {
    fn severity(self) -> Severity {
        match self {
            Threshold::Error => Severity::Error,
            Threshold::Warning => Severity::Warning,
            Threshold::Info => Severity::Info,
        }
    }
}

pub fn validate(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.input)?;
    print_reports(&loaded.reports)?;
    summarise(&loaded, &loaded.reports, Severity::Error)
}

pub fn analyze(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let loaded = load(&args.input)?;
    let mut reports = loaded.reports.clone();
    reports.extend(weft_api::analyze::analyze(&loaded.objects));
    print_reports(&reports)?;
    summarise(&loaded, &reports, args.failure_threshold.severity())
}

fn load(input: &Input) -> anyhow::Result<Loaded> {
    let paths: Vec<&PathBuf> = input.files.iter().chain(&input.paths).collect();
    if paths.is_empty() {
        anyhow::bail!("no input: name files or directories with -f PATH (or - for standard input)");
    }
    let opts = LoadOptions {
        default_namespace: input.namespace.clone(),
        strict: input.strict,
    };
    let mut loaded = Loaded::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            weft_api::load_str(&text, Arc::from(Path::new("<stdin>")), &opts, &mut loaded);
        } else {
            let more = weft_api::load_paths(&[path], &opts);
            loaded.objects.extend(more.objects);
            loaded.reports.extend(more.reports);
            loaded.files += more.files;
        }
    }
    Ok(loaded)
}

fn print_reports(reports: &[Report]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in reports {
        writeln!(out, "{r}")?;
    }
    Ok(())
}

/// Prints the closing line and picks the exit code: 1 when a report reaches `threshold`.
fn summarise(loaded: &Loaded, reports: &[Report], threshold: Severity) -> anyhow::Result<ExitCode> {
    let count = |s: Severity| reports.iter().filter(|r| r.severity() == s).count();
    let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
    let files = plural(loaded.files, "file");
    let objects = plural(loaded.objects.len(), "valid object");
    let line = if errors == 0 && warnings == 0 {
        format!("ok: {objects} in {files}")
    } else {
        format!(
            "{}, {} ({objects} in {files})",
            plural(errors, "error"),
            plural(warnings, "warning")
        )
    };
    writeln!(std::io::stdout().lock(), "{line}")?;
    let failed = reports.iter().any(|r| r.severity() <= threshold);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

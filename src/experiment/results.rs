//! An experiment's results folder: `settings.json`, one cached TOML file per finished run
//! (`runs/`, so an interrupted experiment resumes without redoing them), `results.csv`,
//! `report.md` and the plots. Every file is written atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// One experiment's output folder.
pub struct Results {
    dir: PathBuf,
    total: usize,
    done: usize,
    reused: usize,
    started: Instant,
}

/// A cached run's file: the value under one key (TOML needs a table at the top).
#[derive(serde::Serialize, serde::Deserialize)]
struct Cached<T> {
    value: T,
}

impl Results {
    /// Opens (creating it) the folder `dir` for `experiment` with `settings` (everything that
    /// decides the results). A folder that already holds this experiment with the same settings
    /// is resumed: runs finished there are read back instead of redone. One that holds other
    /// settings is refused, naming the first difference.
    pub fn open(dir: &Path, experiment: &str, settings: &serde_json::Value, environment: &serde_json::Value) -> Result<Self> {
        std::fs::create_dir_all(dir.join("runs"))
            .map_err(|e| Error::Invalid(format!("{}: cannot create the results folder: {e}", dir.display())))?;
        let path = dir.join("settings.json");
        if let Ok(text) = std::fs::read_to_string(&path) {
            let old: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Invalid(format!("{}: not valid JSON ({e}); delete it or use another --out", path.display())))?;
            let old_exp = old.get("experiment").and_then(|v| v.as_str()).unwrap_or("?");
            if old_exp != experiment {
                return Err(Error::Invalid(format!(
                    "{} holds the results of experiment '{old_exp}', not '{experiment}': use another --out",
                    dir.display()
                )));
            }
            if old.get("settings") != Some(settings) {
                let diff = first_difference(old.get("settings").unwrap_or(&serde_json::Value::Null), settings, "");
                return Err(Error::Invalid(format!(
                    "{} holds results of other settings ({diff}): use another --out, or delete the folder to start again",
                    dir.display()
                )));
            }
        }
        let doc = serde_json::json!({
            "experiment": experiment,
            "settings": settings,
            "environment": environment,
        });
        crate::atomic::write(&path, serde_json::to_string_pretty(&doc).expect("JSON values serialise").as_bytes())?;
        Ok(Self { dir: dir.to_path_buf(), total: 0, done: 0, reused: 0, started: Instant::now() })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Sets how many runs the experiment will make (for the `[k/N]` progress lines).
    pub fn plan(&mut self, total: usize) {
        self.total = total;
        self.done = 0;
    }

    /// Run `key` (a file name: letters, digits, `-`, `_`, `.`): the result saved by an earlier
    /// call with this key if there is one, otherwise `f()`, saved before it is returned. Saved
    /// as TOML (`runs/KEY.toml`), which, unlike JSON, keeps NaN and infinities exactly.
    pub fn run<T: Serialize + DeserializeOwned>(&mut self, key: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)), "run key {key:?}");
        self.done += 1;
        let path = self.dir.join("runs").join(format!("{key}.toml"));
        let counter = if self.total > 0 { format!("[{}/{}]", self.done, self.total) } else { format!("[{}]", self.done) };
        if let Ok(text) = std::fs::read_to_string(&path) {
            match toml::from_str::<Cached<T>>(&text) {
                Ok(c) => {
                    println!("{counter} {what}: done before, read from {}", path.display());
                    self.reused += 1;
                    return Ok(c.value);
                }
                Err(e) => println!("{counter} {what}: {} is unreadable ({}); running again", path.display(), e.message()),
            }
        }
        println!("{counter} {what} ({:.0} s so far)", self.started.elapsed().as_secs_f64());
        let value = f()?;
        let cached = Cached { value };
        let text = toml::to_string(&cached).map_err(|e| Error::Invalid(format!("run {key}: cannot record the result: {e}")))?;
        crate::atomic::write(&path, text.as_bytes())?;
        Ok(cached.value)
    }

    /// How many runs so far were read back from an earlier, interrupted experiment.
    pub fn reused(&self) -> usize {
        self.reused
    }

    /// Writes `results.csv`: a header and one row per measured point.
    pub fn write_csv(&self, header: &[&str], rows: &[Vec<String>]) -> Result<()> {
        let mut s = header.join(",");
        s.push('\n');
        for r in rows {
            debug_assert_eq!(r.len(), header.len());
            let cells: Vec<String> = r.iter().map(|c| csv_cell(c)).collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        crate::atomic::write(&self.path("results.csv"), s.as_bytes())
    }

    /// Writes `report.md`.
    pub fn write_report(&self, markdown: &str) -> Result<()> {
        crate::atomic::write(&self.path("report.md"), markdown.as_bytes())
    }
}

/// A CSV cell, quoted when it holds a comma, quote or line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Where two JSON values first differ, as `path: old -> new`.
fn first_difference(old: &serde_json::Value, new: &serde_json::Value, at: &str) -> String {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let p = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                match a.get(k) {
                    Some(w) if w == v => {}
                    Some(w) => return first_difference(w, v, &p),
                    None => return format!("{p}: absent -> {v}"),
                }
            }
            if let Some(k) = a.keys().find(|k| !b.contains_key(*k)) {
                return format!("{}{k}: {} -> absent", if at.is_empty() { String::new() } else { format!("{at}.") }, a[k]);
            }
            format!("{at}: equal")
        }
        _ => format!("{}: {old} -> {new}", if at.is_empty() { "settings" } else { at }),
    }
}

/// A number for a table: `digits` decimals, or `-` for NaN.
pub fn fmt(x: f64, digits: usize) -> String {
    if x.is_finite() {
        format!("{x:.digits$}")
    } else {
        "-".into()
    }
}

/// `mean ± std` as a percentage with `digits` decimals (the std omitted for one seed).
pub fn pct_pm(mean: f64, std: f64, seeds: usize, digits: usize) -> String {
    if seeds > 1 {
        format!("{} ± {}", fmt(100.0 * mean, digits), fmt(100.0 * std, digits))
    } else {
        fmt(100.0 * mean, digits)
    }
}

/// `mean ± std` with `digits` decimals (the std omitted for one seed).
pub fn num_pm(mean: f64, std: f64, seeds: usize, digits: usize) -> String {
    if seeds > 1 {
        format!("{} ± {}", fmt(mean, digits), fmt(std, digits))
    } else {
        fmt(mean, digits)
    }
}

/// `1 seed` or `mean ± std of 3 seeds`, for plot titles.
pub fn seeds_phrase(n: usize) -> String {
    if n == 1 {
        "1 seed".into()
    } else {
        format!("mean ± std of {n} seeds")
    }
}

/// A Markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", header.join(" | "), header.iter().map(|_| "---|").collect::<String>());
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

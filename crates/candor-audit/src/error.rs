/// What went wrong, sorted by whose it is: bad usage (nothing was run; the binary exits 2) or a
/// failed run (exit 1). Every message says what and where, for a person to read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Run(String),
}

impl Error {
    pub fn usage(message: impl std::fmt::Display) -> Error {
        Error::Usage(message.to_string())
    }

    pub fn run(message: impl std::fmt::Display) -> Error {
        Error::Run(message.to_string())
    }
}

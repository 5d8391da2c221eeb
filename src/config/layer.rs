//! A layer of settings: what the flags and the environment give, or what a
//! file gives, every setting optional. A role's layers are merged (the upper
//! one wins, setting by setting) over its defaults, then resolved: required
//! settings demanded, values checked. `layer!` writes a role's layer, its
//! merge, its defaults and its resolved settings from one list of fields.

use std::fmt::Display;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::ConfigError;

/// One role's layer of settings.
pub trait Layer: Default + DeserializeOwned {
    /// The settings with every default filled in, checked.
    type Resolved;
    /// The keys a file may hold; the flags are these with `-` for `_`.
    const KEYS: &'static [&'static str];

    /// `self` wins over `lower`, setting by setting.
    fn over(self, lower: Self) -> Self;

    /// The defaults, as the lowest layer.
    fn defaults() -> Self;

    /// Puts `self` over the defaults, refuses a missing required setting
    /// and checks the values.
    fn resolve(self) -> Result<Self::Resolved, ConfigError>;

    /// Reads a TOML file; a key the role does not know is an error.
    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }
}

/// A role's command line: its layer of flags (clap reads each flag's
/// `PARLOIR_*` variable when the flag is absent) and the file under it.
#[derive(Debug, Clone, clap::Args)]
pub struct Flags<L: clap::Args> {
    /// TOML configuration file (an example per role in config/).
    #[arg(long, env = "PARLOIR_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub layer: L,
}

impl<L: Layer + clap::Args> Flags<L> {
    /// Flags and environment, over the file, over the defaults.
    pub fn resolve(self) -> Result<L::Resolved, ConfigError> {
        let file = match &self.config {
            Some(path) => L::from_file(path)?,
            None => L::default(),
        };
        self.layer.over(file).resolve()
    }
}

/// A flag's `--help`: its doc comment, and its default, so that the
/// default is written only in the code (clap's own would make every flag
/// present).
pub fn help(doc: &[&str], default: Option<impl Display>, required: bool) -> String {
    let text = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    // As clap does with a doc comment.
    let text = text.strip_suffix('.').unwrap_or(&text);
    match default {
        Some(d) => format!("{text} [default: {d}]"),
        None if required => format!("{text} [required]"),
        None => text.to_string(),
    }
}

/// Checks a role's example file: it parses and resolves (under `required`,
/// which gives what the file leaves to the command line), it lists every
/// key in a `# key = value` line, and the values so listed for keys with a
/// default are the code's defaults.
#[cfg(test)]
pub(crate) fn check_example<L>(name: &str, required: L)
where
    L: Layer,
    L::Resolved: PartialEq + std::fmt::Debug,
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    let file = L::from_file(&path).unwrap();
    required.over(file).resolve().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let listed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            l.split_once(" = ")
                .is_some_and(|(key, _)| L::KEYS.contains(&key))
        })
        .collect();
    for key in L::KEYS {
        assert!(
            listed.iter().any(|l| l.starts_with(&format!("{key} = "))),
            "{name} does not list {key}"
        );
    }
    let documented = || toml::from_str::<L>(&listed.join("\n")).unwrap();
    assert_eq!(
        L::defaults().over(documented()).resolve().unwrap(),
        documented().resolve().unwrap(),
        "{name} lists a default that is not the code's"
    );
}

/// Defines a role's layer (`$layer`: clap flags with their environment
/// variables, and a TOML table refusing unknown keys) and its resolved
/// settings (`$resolved`, which must have a `fn validate(&self) ->
/// Result<(), ConfigError>`), from one list of fields:
///
/// ```text
/// /// Doc, shown by --help.
/// name: Type, env "PARLOIR_NAME", default(EXPR);  // resolved as Type
/// name: Type, env "PARLOIR_NAME", required;       // resolved as Type
/// name: Type, env "PARLOIR_NAME", optional;       // resolved as Option<Type>
/// names: Vec<T>, env "PARLOIR_NAME", list, flag "name";
///     // resolved as Vec<T>: a repeated flag (named after `flag`, the key
///     // otherwise), or a list in the file
/// name: bool, env "PARLOIR_NAME", switch;         // `--name` alone is true
/// ```
macro_rules! layer {
    (
        $(#[$layer_meta:meta])*
        pub struct $layer:ident;
        $(#[$resolved_meta:meta])*
        pub struct $resolved:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident: $ty:ty, env $env:literal, $kind:ident $(($default:expr))?
                    $(, flag $flag:literal)?;
            )*
        }
    ) => {
        $(#[$layer_meta])*
        #[derive(Debug, Clone, Default, PartialEq, clap::Args, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $layer {
            $(
                $(#[doc = $doc])*
                #[arg(
                    long $(= $flag)?,
                    env = $env,
                    num_args = crate::config::layer::field!(num_args $kind),
                    default_missing_value = crate::config::layer::field!(missing $kind),
                    help = crate::config::layer::help(
                        &[$($doc),*],
                        crate::config::layer::field!(
                            shown $kind <$layer as crate::config::Layer>::defaults().$field
                        ),
                        crate::config::layer::field!(required $kind),
                    ),
                )]
                pub $field: Option<$ty>,
            )*
        }

        $(#[$resolved_meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $resolved {
            $(
                $(#[doc = $doc])*
                pub $field: crate::config::layer::field!(type $kind $ty),
            )*
        }

        impl crate::config::Layer for $layer {
            type Resolved = $resolved;
            const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            fn over(self, lower: Self) -> Self {
                Self {
                    $($field: self.$field.or(lower.$field),)*
                }
            }

            fn defaults() -> Self {
                Self {
                    $($field: crate::config::layer::field!(default $kind $(($default))?),)*
                }
            }

            fn resolve(self) -> Result<$resolved, crate::config::ConfigError> {
                let merged = self.over(Self::defaults());
                let resolved = $resolved {
                    $($field: crate::config::layer::field!(
                        resolve $kind merged.$field, $field, $env
                    ),)*
                };
                resolved.validate()?;
                Ok(resolved)
            }
        }
    };
}

/// One field's part of `layer!`, by kind.
macro_rules! field {
    // A switch is given alone (`--flag`) or with true/false.
    (num_args switch) => { 0..=1 };
    (num_args $kind:ident) => { 1 };
    (missing switch) => { Some("true") };
    (missing $kind:ident) => { None::<&'static str> };
    (type switch $ty:ty) => { $ty };
    (default switch) => { Some(false) };
    (required switch) => { false };
    (resolve switch $value:expr, $key:ident, $env:literal) => { $value.unwrap_or(false) };
    (type default $ty:ty) => { $ty };
    (type required $ty:ty) => { $ty };
    (type optional $ty:ty) => { Option<$ty> };
    (type list $ty:ty) => { $ty };
    (default default($default:expr)) => { Some($default) };
    (default required) => { None };
    (default optional) => { None };
    (default list) => { None };
    // The default --help shows: a list has none.
    (shown list $value:expr) => { None::<&str> };
    (shown $kind:ident $value:expr) => { $value };
    (required required) => { true };
    (required default) => { false };
    (required optional) => { false };
    (required list) => { false };
    (resolve optional $value:expr, $key:ident, $env:literal) => { $value };
    (resolve list $value:expr, $key:ident, $env:literal) => { $value.unwrap_or_default() };
    // Fields with a default always have a value here.
    (resolve $kind:ident $value:expr, $key:ident, $env:literal) => {
        $value.ok_or(crate::config::ConfigError::Missing {
            key: stringify!($key),
            env: $env,
        })?
    };
}

pub(crate) use {field, layer};

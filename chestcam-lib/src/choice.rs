//! Named choices (a method, a stage, a colormap, a split, ...): one table
//! of names per enum, from which its `FromStr`, its error text and its
//! command-line values (clap's `ValueEnum`: the possible values in `--help`
//! and in a usage error) all come. The command line parses each option
//! once, into the library's own types, through [`ChoiceParser`],
//! [`ListParser`] and [`crate::model::parse_device`].
use crate::{Error, Result};
use clap::builder::{EnumValueParser, PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue};
use std::ffi::OsStr;

/// An enum whose values have names: the first is the one shown, the rest
/// are aliases. Parsing ignores case, `-`, `_` and spaces.
pub trait Choice: clap::ValueEnum + Copy + PartialEq + Send + Sync + 'static {
    /// What the value is, for error texts ("stage", "colormap").
    const WHAT: &'static str;
    /// Every value, in the order shown.
    fn all() -> &'static [Self];
    /// Its names, the shown one first.
    fn names(self) -> &'static [&'static str];
    /// The name shown.
    fn name(self) -> &'static str {
        self.names()[0]
    }
    /// A line of help beside the name in `--help` (a method's cost).
    fn help(self) -> Option<&'static str> {
        None
    }
}

/// Lower case without `-`, `_` and spaces: `Grad-CAM` and `gradcam` agree.
fn normalise(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace(['-', '_', ' '], "")
}

/// `a, b or c`.
pub fn expected<T: Choice>() -> String {
    let names: Vec<&str> = T::all().iter().map(|v| v.name()).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}

/// The value named `s` (any of its names, case and `-`/`_`/space ignored).
pub fn parse<T: Choice>(s: &str) -> Result<T> {
    let want = normalise(s);
    T::all()
        .iter()
        .copied()
        .find(|v| v.names().iter().any(|n| normalise(n) == want))
        .ok_or_else(|| Error::invalid(T::WHAT, format!("{s:?} (expected {})", expected::<T>())))
}

/// clap's `PossibleValue` of a choice: its name, aliases and help line.
pub fn possible_value<T: Choice>(v: T) -> PossibleValue {
    let names = v.names();
    let p = PossibleValue::new(names[0]).aliases(names[1..].iter().copied());
    match v.help() {
        Some(h) => p.help(h),
        None => p,
    }
}

/// Implements [`Choice`], `FromStr` and clap's `ValueEnum` for an enum from
/// one table: `Variant => "name" | "alias", ...`.
#[macro_export]
macro_rules! choices {
    ($ty:ty, $what:literal { $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $crate::choice::Choice for $ty {
            const WHAT: &'static str = $what;
            fn all() -> &'static [Self] {
                &[$(<$ty>::$variant),+]
            }
            fn names(self) -> &'static [&'static str] {
                match self {
                    $(<$ty>::$variant => &[$name $(, $alias)*],)+
                }
            }
        }
        $crate::choice_parsing!($ty);
    };
}

/// `FromStr` and clap's `ValueEnum` for a type that implements [`Choice`]
/// (by [`choices!`], or by hand as the method table does).
#[macro_export]
macro_rules! choice_parsing {
    ($ty:ty) => {
        impl std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                $crate::choice::parse(s)
            }
        }
        impl clap::ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                <Self as $crate::choice::Choice>::all()
            }
            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some($crate::choice::possible_value(*self))
            }
        }
    };
}

/// clap's error for `part` not being one of `T`'s names (with its
/// possible values and a "similar value" tip), plus `extra` possible values.
fn invalid_value<T: Choice>(
    cmd: &clap::Command,
    arg: Option<&clap::Arg>,
    part: &str,
    extra: &[&str],
) -> clap::Error {
    let mut e = match EnumValueParser::<T>::new().parse_ref(cmd, arg, OsStr::new(part)) {
        Err(e) => e,
        // Unreachable in practice (clap's matching is stricter than ours);
        // an error is still the honest answer.
        Ok(_) => clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd),
    };
    if !extra.is_empty() {
        let mut valid: Vec<String> = T::all().iter().map(|v| v.name().to_string()).collect();
        valid.extend(extra.iter().map(|s| s.to_string()));
        e.insert(ContextKind::ValidValue, ContextValue::Strings(valid));
    }
    e
}

fn utf8<'a>(cmd: &clap::Command, value: &'a OsStr) -> std::result::Result<&'a str, clap::Error> {
    value
        .to_str()
        .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidUtf8).with_cmd(cmd))
}

/// Parses one [`Choice`] for clap, as its `FromStr` does (so `Grad-CAM` is
/// `gradcam`); a bad value gets clap's error with the possible values.
#[derive(Clone)]
pub struct ChoiceParser<T>(std::marker::PhantomData<T>);

impl<T: Choice> ChoiceParser<T> {
    pub fn new() -> Self {
        ChoiceParser(std::marker::PhantomData)
    }
}

impl<T: Choice> Default for ChoiceParser<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Choice> TypedValueParser for ChoiceParser<T> {
    type Value = T;
    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> std::result::Result<T, clap::Error> {
        let s = utf8(cmd, value)?;
        parse::<T>(s).map_err(|_| invalid_value::<T>(cmd, arg, s.trim(), &[]))
    }
    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::all().iter().filter_map(|v| v.to_possible_value()),
        ))
    }
}

/// Several choices, comma-separated, in the order given without repeats;
/// `all` is every value of [`ListParser::new`]'s list.
#[derive(Debug, Clone, PartialEq)]
pub struct Choices<T>(pub Vec<T>);

impl<T> std::ops::Deref for Choices<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

/// Parses [`Choices`] for clap.
#[derive(Clone)]
pub struct ListParser<T> {
    all: Vec<T>,
}

impl<T: Choice> ListParser<T> {
    /// `all` means every value in `all`.
    pub fn new(all: impl IntoIterator<Item = T>) -> Self {
        ListParser {
            all: all.into_iter().collect(),
        }
    }

    /// The list `s` names (`all`, or names separated by commas).
    pub fn parse_list(&self, s: &str) -> Result<Vec<T>> {
        if normalise(s) == "all" {
            return Ok(self.all.clone());
        }
        let mut out: Vec<T> = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let v = parse::<T>(part)?;
            if !out.contains(&v) {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Err(Error::invalid(T::WHAT, format!("{s:?} names nothing")));
        }
        Ok(out)
    }
}

impl<T: Choice> TypedValueParser for ListParser<T> {
    type Value = Choices<T>;
    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> std::result::Result<Choices<T>, clap::Error> {
        let s = utf8(cmd, value)?;
        match self.parse_list(s) {
            Ok(v) => Ok(Choices(v)),
            Err(_) => {
                // The first part that is no name, or the whole (empty) list.
                let bad = s
                    .split(',')
                    .map(str::trim)
                    .find(|p| !p.is_empty() && parse::<T>(p).is_err())
                    .unwrap_or(s);
                Err(invalid_value::<T>(cmd, arg, bad, &["all"]))
            }
        }
    }
    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::all()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .chain(std::iter::once(
                    PossibleValue::new("all").help("every one (comma-separate several)"),
                )),
        ))
    }
}

/// The device option's text form for clap, checked as
/// [`crate::model::parse_device`] checks it (a run's config.json keeps
/// `auto`, so that it resumes on another machine).
pub fn device_name(s: &str) -> Result<String> {
    crate::model::parse_device(s)?;
    Ok(s.trim().to_ascii_lowercase())
}

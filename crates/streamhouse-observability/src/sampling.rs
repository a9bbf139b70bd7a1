//! Which spans are recorded: `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.

use opentelemetry_sdk::trace::Sampler;

use crate::config::ConfigError;

/// A head sampler, as named by `OTEL_TRACES_SAMPLER`.
///
/// ```
/// use streamhouse_observability::sampling::TraceSampler;
///
/// let sampler = TraceSampler::ParentBased(Box::new(TraceSampler::TraceIdRatio(0.25)));
/// let _sdk_sampler = sampler.to_sdk();
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum TraceSampler {
    /// Record every span (`always_on`).
    AlwaysOn,
    /// Record no span (`always_off`).
    AlwaysOff,
    /// Record this fraction of traces, chosen by trace id (`traceidratio`).
    TraceIdRatio(f64),
    /// Follow the parent's decision; use the inner sampler for root spans
    /// (`parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio`).
    ParentBased(Box<TraceSampler>),
}

impl Default for TraceSampler {
    /// `parentbased_always_on`, the spec's default.
    fn default() -> Self {
        TraceSampler::ParentBased(Box::new(TraceSampler::AlwaysOn))
    }
}

impl TraceSampler {
    /// The SDK sampler.
    pub fn to_sdk(&self) -> Sampler {
        match self {
            TraceSampler::AlwaysOn => Sampler::AlwaysOn,
            TraceSampler::AlwaysOff => Sampler::AlwaysOff,
            TraceSampler::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(*ratio),
            TraceSampler::ParentBased(root) => Sampler::ParentBased(Box::new(root.to_sdk())),
        }
    }

    /// Reads the two variables through `get` (`None` for unset or blank).
    pub(crate) fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const NAME: &str = "OTEL_TRACES_SAMPLER";
        const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
        let Some(raw) = get(NAME) else {
            return Ok(TraceSampler::default());
        };
        let ratio = || match get(ARG) {
            None => Ok(1.0),
            Some(arg) => match arg.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::new(ARG, &arg, "a number from 0 to 1")),
            },
        };
        let parent_based = |root| TraceSampler::ParentBased(Box::new(root));
        Ok(match raw.trim() {
            "always_on" => TraceSampler::AlwaysOn,
            "always_off" => TraceSampler::AlwaysOff,
            "traceidratio" => TraceSampler::TraceIdRatio(ratio()?),
            "parentbased_always_on" => parent_based(TraceSampler::AlwaysOn),
            "parentbased_always_off" => parent_based(TraceSampler::AlwaysOff),
            "parentbased_traceidratio" => parent_based(TraceSampler::TraceIdRatio(ratio()?)),
            _ => {
                return Err(ConfigError::new(
                    NAME,
                    &raw,
                    "always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio",
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<TraceSampler, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSampler::from_lookup(&|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn parses_every_standard_name() {
        assert_eq!(from(&[]).unwrap(), TraceSampler::default());
        let ratio = [("OTEL_TRACES_SAMPLER_ARG", "0.5")];
        let cases = [
            ("always_on", TraceSampler::AlwaysOn),
            ("always_off", TraceSampler::AlwaysOff),
            ("traceidratio", TraceSampler::TraceIdRatio(0.5)),
            (
                "parentbased_always_off",
                TraceSampler::ParentBased(Box::new(TraceSampler::AlwaysOff)),
            ),
            (
                "parentbased_traceidratio",
                TraceSampler::ParentBased(Box::new(TraceSampler::TraceIdRatio(0.5))),
            ),
        ];
        for (name, want) in cases {
            let got = from(&[("OTEL_TRACES_SAMPLER", name), ratio[0]]).unwrap();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from(&[("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
        assert_eq!(err.variable, "OTEL_TRACES_SAMPLER");
        let err = from(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert_eq!(
            (err.variable.as_str(), err.value.as_str()),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5")
        );
    }
}

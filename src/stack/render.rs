//! The one way templates are rendered: embedded source, no autoescaping (the callers validate or
//! escape values themselves, per format), errors with their whole cause chain.

use serde::Serialize;
use tera::{Context, Tera};

use super::StackError;

/// Renders the embedded template `source` (named `name` in errors) with `data` as its context.
pub(crate) fn render(
    name: &'static str,
    source: &'static str,
    data: &impl Serialize,
) -> Result<String, StackError> {
    let fail = |e: tera::Error| StackError::Template {
        template: name,
        detail: chain(&e),
    };
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_template(name, source).map_err(fail)?;
    let context = Context::from_serialize(data).map_err(fail)?;
    tera.render(name, &context).map_err(fail)
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_template_name_and_cause() {
        let err = render("broken.tera", "{{ missing }}", &serde_json::json!({})).unwrap_err();
        let StackError::Template { template, detail } = err else {
            panic!("wrong error");
        };
        assert_eq!(template, "broken.tera");
        assert!(detail.contains("missing"), "{detail}");
    }
}

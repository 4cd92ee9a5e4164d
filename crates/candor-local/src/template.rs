//! The chat template a GGUF carries (`tokenizer.chat_template`, Jinja), rendered with
//! minijinja and Python-style string methods, as the model's own tooling would.

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

use crate::LocalError;

pub struct ChatTemplate {
    /// `None`: a base model without a template; the prompt goes in as plain text.
    source: Option<String>,
    env: Environment<'static>,
    bos: String,
    eos: String,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

impl ChatTemplate {
    pub fn new(
        source: Option<String>,
        bos: String,
        eos: String,
    ) -> Result<ChatTemplate, LocalError> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        if let Some(source) = &source {
            env.add_template_owned("chat", source.clone())
                .map_err(|e| LocalError::Template(e.to_string()))?;
        }
        Ok(ChatTemplate {
            source,
            env,
            bos,
            eos,
        })
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    /// The text the model reads for one user turn, with an optional system prompt, ending where
    /// the assistant's answer begins.
    pub fn render(&self, system: Option<&str>, prompt: &str) -> Result<String, LocalError> {
        if self.source.is_none() {
            return Ok(match system {
                Some(s) => format!("{s}\n\n{prompt}"),
                None => prompt.to_string(),
            });
        }
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message {
                role: "system",
                content: system,
            });
        }
        messages.push(Message {
            role: "user",
            content: prompt,
        });
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| LocalError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos,
                eos_token => self.eos,
            })
            .map_err(|e| LocalError::Template(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chatml_template_renders_the_turn_and_opens_the_answer() {
        let source = "{%- for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'].strip() }}<|im_end|>\n{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}";
        let t = ChatTemplate::new(Some(source.into()), "".into(), "<|im_end|>".into()).unwrap();
        assert_eq!(
            t.render(Some("Be brief."), " What happened in 1989? ").unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|><|im_start|>user\nWhat happened in 1989?<|im_end|><|im_start|>assistant"
        );
    }

    #[test]
    fn a_template_that_raises_is_an_error_and_no_template_is_plain_text() {
        let t = ChatTemplate::new(
            Some("{{ raise_exception('roles must alternate') }}".into()),
            String::new(),
            String::new(),
        )
        .unwrap();
        let e = t.render(None, "hi").unwrap_err().to_string();
        assert!(e.contains("roles must alternate"), "{e}");
        let plain = ChatTemplate::new(None, String::new(), String::new()).unwrap();
        assert_eq!(plain.render(Some("S"), "Q").unwrap(), "S\n\nQ");
        assert!(ChatTemplate::new(Some("{% if %}".into()), String::new(), String::new()).is_err());
    }
}

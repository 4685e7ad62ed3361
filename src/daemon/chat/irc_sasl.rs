//! SASL on the IRC door (IRCv3 `sasl`, before registration): PLAIN
//! checks an account's password as a prototype handshake's password is
//! checked (the same budgets and failure limits, accounts.rs), and
//! OAUTHBEARER (RFC 7628) verifies an OpenID Connect token as the
//! prototype's `token` is verified (oidc.rs, core/access.rs).
//!
//! AUTHENTICATE payloads are base64 in chunks of 400 bytes (`+` for an
//! empty one), at most [`MAX_PAYLOAD`] bytes in all.

use base64::Engine;

use super::{Chat, Parked};
use crate::core::access;
use crate::core::hub::ConnId;
use crate::core::irc::Message;
use crate::core::ircmap::{self, IRC_HOST};
use crate::daemon::accounts::Verdict;
use crate::daemon::logbook::Level;
use crate::daemon::shared::Shared;

/// Most decoded bytes of one AUTHENTICATE exchange (a JWT fits).
pub const MAX_PAYLOAD: usize = 8192;
/// AUTHENTICATE's chunk size.
const CHUNK: usize = 400;

/// A SASL exchange under way.
#[derive(Debug, Default)]
pub struct Sasl {
    pub mechanism: String,
    /// Base64 received so far (chunks of [`CHUNK`] until a shorter one).
    pub buffer: String,
}

/// The mechanisms this chatd offers (OAUTHBEARER only with OIDC on).
pub fn mechanisms(sh: &Shared) -> &'static str {
    if sh.oidc.is_some() {
        "PLAIN,OAUTHBEARER"
    } else {
        "PLAIN"
    }
}

impl Chat {
    pub(super) fn on_authenticate(&mut self, sh: &mut Shared, id: ConnId, msg: &Message) {
        let Some(arg) = msg.param(0) else {
            return self.numeric(sh, id, "461", &["AUTHENTICATE", "Not enough parameters"]);
        };
        let Some(c) = self.irc_mut(id) else {
            return;
        };
        // Logging in (or switching accounts) after registration is not
        // offered: a registered name is held only by its account's owner,
        // and the nick and rooms a connection has were taken under the
        // account it had then.
        if c.account.is_some() {
            return self.numeric(
                sh,
                id,
                "907",
                &["You have already authenticated using SASL"],
            );
        }
        if c.registered {
            return self.numeric(
                sh,
                id,
                "462",
                &["You may not reregister (SASL is offered before registration only)"],
            );
        }
        if !c.has("sasl") {
            return self.numeric(
                sh,
                id,
                "904",
                &["SASL authentication failed: CAP REQ sasl first"],
            );
        }
        if arg == "*" {
            c.sasl = None;
            return self.numeric(sh, id, "906", &["SASL authentication aborted"]);
        }
        let Some(exchange) = c.sasl.as_mut() else {
            let mechanism = arg.to_ascii_uppercase();
            let offered = mechanisms(sh).split(',').any(|m| m == mechanism);
            if !offered {
                let list = mechanisms(sh);
                self.numeric(sh, id, "908", &[list, "are available SASL mechanisms"]);
                return self.numeric(sh, id, "904", &["SASL authentication failed"]);
            }
            c.sasl = Some(Sasl {
                mechanism,
                buffer: String::new(),
            });
            let line = Message::new(None, "AUTHENTICATE", &["+"]).encode();
            return self.irc_send(sh, id, &line);
        };
        if arg.len() > CHUNK {
            c.sasl = None;
            return self.numeric(sh, id, "905", &["SASL message too long"]);
        }
        if arg != "+" {
            exchange.buffer.push_str(arg);
        }
        if exchange.buffer.len() > MAX_PAYLOAD * 4 / 3 + 4 {
            c.sasl = None;
            return self.numeric(
                sh,
                id,
                "904",
                &["SASL authentication failed: the message is too long"],
            );
        }
        if arg.len() == CHUNK {
            return; // More follows.
        }
        let Some(exchange) = c.sasl.take() else {
            return;
        };
        let payload = base64::engine::general_purpose::STANDARD.decode(exchange.buffer.as_bytes());
        let Ok(payload) = payload else {
            return self.numeric(sh, id, "904", &["SASL authentication failed: bad base64"]);
        };
        let outcome = match exchange.mechanism.as_str() {
            "PLAIN" => self.sasl_plain(sh, id, &payload),
            _ => Chat::sasl_bearer(sh, &payload),
        };
        match outcome {
            Ok(account) => self.logged_in(sh, id, &account),
            Err(None) => {
                // Its password check waits for the next pass: this
                // AUTHENTICATE is tried again then, with the same payload.
                if let Some(c) = self.irc_mut(id) {
                    c.sasl = Some(exchange);
                }
                let mut again = msg.clone();
                again.params = vec!["+".into()];
                self.park(id, Parked::Irc(again));
            }
            Err(Some(why)) => {
                let peer = self.peer_text(id);
                self.id_log(
                    sh,
                    id,
                    Level::Warn,
                    format!(
                        "irc: SASL {} refused from {peer}: {why}",
                        exchange.mechanism
                    ),
                );
                self.numeric(
                    sh,
                    id,
                    "904",
                    &[&format!("SASL authentication failed: {why}")],
                );
            }
        }
    }

    /// `authzid NUL authcid NUL password`: the account's password.
    /// `Err(None)`: ask again next pass.
    fn sasl_plain(
        &mut self,
        sh: &mut Shared,
        id: ConnId,
        payload: &[u8],
    ) -> Result<String, Option<String>> {
        let text = std::str::from_utf8(payload).map_err(|_| Some("not UTF-8".to_string()))?;
        let mut parts = text.split('\0');
        let (Some(authz), Some(name), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Some("malformed PLAIN message".into()));
        };
        if !authz.is_empty() && authz != name {
            return Err(Some(
                "authorization as another account is not allowed".into(),
            ));
        }
        let peer = self.conns[&id].peer;
        match sh
            .accounts
            .check(sh.now, name, Some(password), peer.ip(), false)
        {
            Verdict::Allowed { registered: true } => Ok(name.to_string()),
            Verdict::Allowed { registered: false } => Err(Some("wrong name or password".into())),
            Verdict::Unauthorized(why) => Err(Some(why)),
            Verdict::Busy => Err(Some(
                "too many logins to check right now; try again in a second".into(),
            )),
            Verdict::Later => Err(None),
        }
    }

    /// RFC 7628's `n,a=…,\x01auth=Bearer TOKEN\x01\x01`: an OIDC token.
    fn sasl_bearer(sh: &mut Shared, payload: &[u8]) -> Result<String, Option<String>> {
        let text = std::str::from_utf8(payload).map_err(|_| Some("not UTF-8".to_string()))?;
        let token = text
            .split('\u{1}')
            .find_map(|kv| kv.strip_prefix("auth="))
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| Some("no bearer token in the OAUTHBEARER message".to_string()))?;
        let Some(oidc) = &sh.oidc else {
            return Err(Some("this server accepts no tokens".into()));
        };
        let name = oidc.verify(token).map_err(Some)?;
        let owner = sh.accounts.owner_of(&name);
        access::token_login(&name, None, owner).map_err(Some)
    }

    /// SASL succeeded: 900 and 903.
    fn logged_in(&mut self, sh: &mut Shared, id: ConnId, account: &str) {
        let Some(c) = self.irc_mut(id) else {
            return;
        };
        c.account = Some(account.to_string());
        let nick = c.target().to_string();
        let user = c.user.clone().unwrap_or_else(|| "*".into());
        let me = ircmap::source(&nick, &user, IRC_HOST);
        self.numeric(
            sh,
            id,
            "900",
            &[&me, account, &format!("You are now logged in as {account}")],
        );
        self.numeric(sh, id, "903", &["SASL authentication successful"]);
    }
}

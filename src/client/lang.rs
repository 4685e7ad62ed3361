//! The client's words, in one language per run: Portuguese (the
//! prototype's) by default, English when `--lang en` or the locale
//! (`LC_ALL`, then `LC_MESSAGES`, then `LANG`) says so. Every text the
//! client shows is a [`Text`] looked up here, and the server's reasons
//! (English) are mapped to texts the client owns ([`reason`]), so no line
//! mixes two languages.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Pt,
    En,
}

static LANG: OnceLock<Lang> = OnceLock::new();

/// Chooses the language for this run (once; later calls change nothing).
/// `flag` is `--lang`, else the locale decides.
pub fn choose(flag: Option<&str>) -> Lang {
    let lang = match flag {
        Some(f) => from_locale(f),
        None => {
            let var = |n| std::env::var(n).ok().filter(|v: &String| !v.is_empty());
            let locale = var("LC_ALL")
                .or_else(|| var("LC_MESSAGES"))
                .or_else(|| var("LANG"));
            locale.as_deref().map_or(Lang::Pt, from_locale)
        }
    };
    *LANG.get_or_init(|| lang)
}

/// `en`, `en_GB.UTF-8`, `english`: English; anything else (`pt_BR`, `C`,
/// `POSIX`): Portuguese, as the prototype.
pub fn from_locale(locale: &str) -> Lang {
    match locale.to_ascii_lowercase().starts_with("en") {
        true => Lang::En,
        false => Lang::Pt,
    }
}

pub fn lang() -> Lang {
    *LANG.get().unwrap_or(&Lang::Pt)
}

/// Everything the client says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Username,
    ChooseRoom,
    NoPublicRooms,
    /// `{}`: the list.
    RoomsAvailable,
    HowToLeave,
    HowToLeaveScreen,
    Leaving,
    /// `{}` reason, `{}` seconds.
    BusyRetrying,
    /// `{}` reason.
    StillBusy,
    NoSuchRoom,
    RoomFull,
    NameTaken,
    /// `{}` reason.
    TokenRefused,
    /// `{}` reason.
    LoginNeeded,
    Password,
    NotAllowed,
    RoomKey,
    /// `{}` code, `{}` reason.
    JoinRefused,
    /// `{}` seconds.
    NoAnswer,
    ClosedByServer,
    RoomClosed,
    Kicked,
    ServerStopping,
    /// `{}` code, `{}` reason.
    MessageRefused,
    /// `{}` count, `{}` names.
    InTheRoom,
    /// `{}` the word typed.
    UnknownCommand,
    HistoryMarker,
    NoTopic,
    Topic,
    CameIn,
    WentOut,
    NoTls,
    Private,
    /// `{}` count.
    ScrolledOne,
    ScrolledMany,
    NoPublicRoomsShort,
    /// `{}` list.
    Rooms,
    /// `{}` error.
    CannotListRooms,
    /// `{}` seconds.
    Reconnecting,
    Reconnected,
    Connecting,
    /// `{}` why.
    Disconnected,
    /// `{}` room.
    NotInRoom,
    /// `{}` room.
    JoinHint,
    NoRoomToSend,
    /// `{}` room.
    AlreadyIn,
    DirectNeedsName,
    /// `{}` the command.
    FullScreenOnly,
    /// `{}` name.
    DirectWith,
    Help1,
    Help2,
    Help3,
    Help4,
    Help5,
    /// `{}` address, `{}` fingerprint.
    PinLearned,
    /// `{}` file, `{}` address, `{}` old, `{}` new.
    PinChanged,
}

fn pt(t: Text) -> &'static str {
    use Text::*;
    match t {
        Username => "Username: ",
        ChooseRoom => "Escolha a sala: ",
        NoPublicRooms => "Nenhuma sala pública no momento.",
        RoomsAvailable => "Salas disponíveis: {}",
        HowToLeave => "Para sair, digite o comando /SAIR.\n",
        HowToLeaveScreen => "Para sair, digite o comando /SAIR. /help mostra os comandos.",
        Leaving => "Saindo da sala...\n",
        BusyRetrying => "O servidor está ocupado ({}). Tentando de novo em {} s...",
        StillBusy => "O servidor continua ocupado: {}",
        NoSuchRoom => "A sala escolhida não existe. Tente novamente.\n",
        RoomFull => "A sala escolhida está cheia. Tente outra.\n",
        NameTaken => "Esse nome já está em uso nesta sala. Escolha outro.\n",
        TokenRefused => "Token recusado: {}",
        LoginNeeded => "Login necessário ou senha incorreta: {}",
        Password => "Senha: ",
        NotAllowed => "Você não tem permissão para entrar nesta sala: {}",
        RoomKey => "Senha da sala (Enter se não tiver): ",
        JoinRefused => "Entrada recusada ({}): {}\n",
        NoAnswer => "O servidor não respondeu em {} s.",
        ClosedByServer => "Conexão encerrada pelo servidor.",
        RoomClosed => "A sala foi encerrada pelo administrador.",
        Kicked => "Você foi removido da sala.",
        ServerStopping => "O servidor está encerrando.",
        MessageRefused => "Mensagem recusada ({}): {}",
        InTheRoom => "Na sala ({}): {}",
        UnknownCommand => {
            "Comando desconhecido: {} (nada foi enviado; /help lista os comandos, //texto envia \"/texto\")"
        }
        HistoryMarker => "histórico --",
        NoTopic => "(sem tópico)",
        Topic => "Tópico",
        CameIn => "entrou na sala",
        WentOut => "saiu da sala",
        NoTls => "sem TLS",
        Private => "privada",
        ScrolledOne => "↑ rolado ({} nova)",
        ScrolledMany => "↑ rolado ({} novas)",
        NoPublicRoomsShort => "Nenhuma sala pública.",
        Rooms => "Salas: {}",
        CannotListRooms => "Não foi possível listar as salas: {}",
        Reconnecting => "reconectando em {} s",
        Reconnected => "Reconectado.",
        Connecting => "conectando",
        Disconnected => "Conexão perdida: {}",
        NotInRoom => "Você não está mais em {}.",
        JoinHint => "/join {} tenta entrar de novo.",
        NoRoomToSend => "Nenhuma sala conectada: a mensagem não foi enviada.",
        AlreadyIn => "Já está em {}.",
        DirectNeedsName => "Uso: /msg NOME texto",
        FullScreenOnly => "{} só existe na tela cheia (sem --plain); nada foi enviado.",
        DirectWith => "Conversa com {} (só vocês dois veem).",
        Help1 => "Comandos: /help esta ajuda · /who quem está na sala · /salas salas públicas",
        Help2 => {
            "/join SALA entra em outra sala · /part sai desta janela · /msg NOME texto fala só com NOME · /query NOME abre a conversa · /me ação"
        }
        Help3 => {
            "/SAIR sai da sala (a última: escolhe outra) · /quit fecha o chat · //texto envia \"/texto\""
        }
        Help4 => {
            "Operadores da sala: /kick nome [motivo] · /ban nome [1h] [motivo] · /unban nome · /mute nome [10m] [motivo] · /unmute nome · /topic [texto] · /limit N · /moderated on|off"
        }
        Help5 => {
            "Teclas: Alt-1..9 Ctrl-N/P janelas · ←/→ Home/End Ctrl-A/E/W/U/K editam · Tab completa nomes · ↑/↓ linhas enviadas · PgUp/PgDn rolam · F2 membros · Ctrl-L redesenha"
        }
        PinLearned => "Primeira conexão com {}: certificado guardado (sha256:{}).",
        PinChanged => {
            "ATENÇÃO: o certificado de {1} MUDOU.\n  guardado: sha256:{2}\n  recebido: sha256:{3}\nPode ser um ataque (alguém no meio), ou um certificado novo: confirme com o administrador.\nSe for novo, apague a linha de {1} em {0}."
        }
    }
}

fn en(t: Text) -> &'static str {
    use Text::*;
    match t {
        Username => "Username: ",
        ChooseRoom => "Choose a room: ",
        NoPublicRooms => "No public rooms at the moment.",
        RoomsAvailable => "Rooms: {}",
        HowToLeave => "To leave, type /SAIR.\n",
        HowToLeaveScreen => "To leave, type /SAIR. /help lists the commands.",
        Leaving => "Leaving the room...\n",
        BusyRetrying => "The server is busy ({}). Trying again in {} s...",
        StillBusy => "The server is still busy: {}",
        NoSuchRoom => "There is no such room. Try again.\n",
        RoomFull => "That room is full. Try another.\n",
        NameTaken => "That name is taken in this room. Choose another.\n",
        TokenRefused => "Token refused: {}",
        LoginNeeded => "Login needed, or a wrong password: {}",
        Password => "Password: ",
        NotAllowed => "You may not enter this room: {}",
        RoomKey => "Room key (Enter if you have none): ",
        JoinRefused => "Join refused ({}): {}\n",
        NoAnswer => "The server did not answer within {} s.",
        ClosedByServer => "The server closed the connection.",
        RoomClosed => "The administrator closed the room.",
        Kicked => "You were removed from the room.",
        ServerStopping => "The server is shutting down.",
        MessageRefused => "Message refused ({}): {}",
        InTheRoom => "In the room ({}): {}",
        UnknownCommand => {
            "Unknown command: {} (nothing was sent; /help lists the commands, //text sends \"/text\")"
        }
        HistoryMarker => "history --",
        NoTopic => "(no topic)",
        Topic => "Topic",
        CameIn => "joined the room",
        WentOut => "left the room",
        NoTls => "no TLS",
        Private => "private",
        ScrolledOne => "↑ scrolled ({} new)",
        ScrolledMany => "↑ scrolled ({} new)",
        NoPublicRoomsShort => "No public rooms.",
        Rooms => "Rooms: {}",
        CannotListRooms => "Could not list the rooms: {}",
        Reconnecting => "reconnecting in {} s",
        Reconnected => "Reconnected.",
        Connecting => "connecting",
        Disconnected => "Connection lost: {}",
        NotInRoom => "You are no longer in {}.",
        JoinHint => "/join {} tries to enter again.",
        NoRoomToSend => "No room is connected: the message was not sent.",
        AlreadyIn => "Already in {}.",
        DirectNeedsName => "Usage: /msg NAME text",
        FullScreenOnly => "{} is only on the full screen (without --plain); nothing was sent.",
        DirectWith => "Conversation with {} (only the two of you see it).",
        Help1 => "Commands: /help this help · /who who is in the room · /salas public rooms",
        Help2 => {
            "/join ROOM enters another room · /part leaves this window · /msg NAME text talks to NAME alone · /query NAME opens the conversation · /me action"
        }
        Help3 => {
            "/SAIR leaves the room (the last one: choose another) · /quit closes chat · //text sends \"/text\""
        }
        Help4 => {
            "Room operators: /kick name [reason] · /ban name [1h] [reason] · /unban name · /mute name [10m] [reason] · /unmute name · /topic [text] · /limit N · /moderated on|off"
        }
        Help5 => {
            "Keys: Alt-1..9 Ctrl-N/P windows · ←/→ Home/End Ctrl-A/E/W/U/K edit · Tab completes names · ↑/↓ sent lines · PgUp/PgDn scroll · F2 members · Ctrl-L redraws"
        }
        PinLearned => "First connection to {}: its certificate is remembered (sha256:{}).",
        PinChanged => {
            "WARNING: the certificate of {1} has CHANGED.\n  remembered: sha256:{2}\n  received:   sha256:{3}\nThis may be an attack (someone in the middle), or a new certificate: check with the administrator.\nIf it is new, delete the line for {1} in {0}."
        }
    }
}

/// A text in this run's language.
pub fn t(text: Text) -> &'static str {
    match lang() {
        Lang::Pt => pt(text),
        Lang::En => en(text),
    }
}

/// A text with its `{}` filled in order (`{0}`, `{1}`... by position).
pub fn tf(text: Text, args: &[&str]) -> String {
    fill(t(text), args)
}

fn fill(template: &str, args: &[&str]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if after[..close].chars().all(|c| c.is_ascii_digit()) => {
                let index = match after[..close].parse::<usize>() {
                    Ok(i) => i,
                    Err(_) => {
                        next += 1;
                        next - 1
                    }
                };
                out.push_str(args.get(index).copied().unwrap_or(""));
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The server's reason for a refusal (`code`), in this run's language:
/// as sent in English; in Portuguese, the known reasons in the client's
/// own words (a ban's or a kick's free text, written by a person, is kept
/// as written), else what the code means.
pub fn reason(code: &str, reason: &str) -> String {
    let reason = crate::core::text::printable(reason);
    if lang() == Lang::En {
        return reason;
    }
    let after = |prefix: &str| reason.strip_prefix(prefix).map(str::to_string);
    let wait = || {
        reason
            .rsplit("try again in ")
            .next()
            .filter(|_| reason.contains("try again in "))
            .map(|w| w.trim_end_matches(" s").to_string())
    };
    if reason.contains("wrong name or password") {
        return "nome ou senha incorretos".into();
    }
    if reason.starts_with("login required") {
        return "este servidor só aceita usuários registrados, com senha".into();
    }
    if reason.ends_with("is a registered name: a password is needed") {
        return "esse nome é registrado: é preciso a senha".into();
    }
    if reason.contains("looks like the registered name") {
        return "esse nome se parece com um nome registrado".into();
    }
    if let Some(rest) = after("banned from room ") {
        return format!("banido da sala {}", until_pt(&rest));
    }
    if let Some(rest) = after("banned from this server") {
        return format!("banido do servidor{}", until_pt(&rest));
    }
    if let Some(rest) = after("you are muted in room ") {
        return format!("você está silenciado na sala {}", until_pt(&rest));
    }
    if reason.contains("is moderated: only its operators") {
        return "a sala está moderada: só operadores e quem tem voz falam".into();
    }
    if reason.contains("that person's client cannot receive direct messages") {
        return "o cliente dessa pessoa não recebe mensagens diretas".into();
    }
    if let Some(w) = wait() {
        return format!("muitas tentativas; tente de novo em {w} s");
    }
    match code {
        "400" => "pedido malformado".into(),
        "401" => "login recusado".into(),
        "403" => "não permitido".into(),
        "404" => "não encontrado".into(),
        "409" => "nome em uso".into(),
        "413" => "mensagem longa demais".into(),
        "429" => "mensagens rápidas demais; espere um pouco".into(),
        "501" => "sala cheia".into(),
        "503" => "servidor ocupado".into(),
        _ => format!("código {code}"),
    }
}

/// A network error in this run's language (the system's words are
/// English).
pub fn io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    if lang() == Lang::En {
        return e.to_string();
    }
    match e.kind() {
        K::ConnectionRefused => "conexão recusada".into(),
        K::ConnectionReset | K::ConnectionAborted => "conexão interrompida pelo servidor".into(),
        K::BrokenPipe => "conexão interrompida".into(),
        K::TimedOut => "tempo esgotado".into(),
        K::NetworkUnreachable | K::HostUnreachable => "rede inalcançável".into(),
        _ => match e.raw_os_error() {
            Some(n) => format!("erro de rede (errno {n})"),
            None => "erro de rede".into(),
        },
    }
}

/// "'Teste': spam (until 2026-…Z)" with its words in Portuguese; the
/// room's name and the reason a person wrote stay as written.
fn until_pt(rest: &str) -> String {
    rest.replace(" (until ", " (até ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locale_picks_english_only_when_it_says_so() {
        assert_eq!(from_locale("en_GB.UTF-8"), Lang::En);
        assert_eq!(from_locale("EN"), Lang::En);
        assert_eq!(from_locale("pt_BR.UTF-8"), Lang::Pt);
        assert_eq!(from_locale("C"), Lang::Pt);
        assert_eq!(from_locale("de_DE"), Lang::Pt);
    }

    #[test]
    fn templates_fill_in_order_and_by_position() {
        assert_eq!(fill("a {} b {}", &["1", "2"]), "a 1 b 2");
        assert_eq!(fill("{1}/{0} {1}", &["x", "y"]), "y/x y");
        assert_eq!(fill("{literal}", &[]), "{literal}");
        assert_eq!(fill("{}", &[]), "");
    }

    #[test]
    fn every_text_exists_in_both_languages_with_the_same_holes() {
        use Text::*;
        for t in [
            BusyRetrying,
            JoinRefused,
            InTheRoom,
            PinChanged,
            PinLearned,
            Reconnecting,
            DirectWith,
        ] {
            let holes = |s: &str| s.matches('{').count();
            assert_eq!(holes(pt(t)), holes(en(t)), "{t:?}");
        }
    }

    #[test]
    fn server_reasons_become_portuguese_without_mixing() {
        // Tests run in Portuguese unless a test chose otherwise.
        if lang() != Lang::Pt {
            return;
        }
        assert_eq!(
            reason("401", "'Yan' is a registered name: a password is needed"),
            "esse nome é registrado: é preciso a senha"
        );
        assert_eq!(
            reason(
                "403",
                "banned from room 'Teste': spam (until 2026-12-06T23:00:00Z)"
            ),
            "banido da sala 'Teste': spam (até 2026-12-06T23:00:00Z)"
        );
        assert_eq!(
            reason("503", "too many joins from 127.0.0.1; try again in 7 s"),
            "muitas tentativas; tente de novo em 7 s"
        );
        assert_eq!(reason("418", "teapot"), "código 418");
        assert_eq!(reason("404", "no room named 'X'"), "não encontrado");
    }
}

//! ProxyJump (`ssh -J person@bastion login@target`): the client opens a
//! direct-tcpip channel to the target's name and speaks SSH inside it. The gateway
//! answers that inner SSH itself, so the inner session ends here, where it is
//! authorized, recorded and audited like any other, and the inner user name is the
//! login on the target.

use russh::server::{ChannelOpenHandle, Msg};
use russh::{Channel, ChannelOpenFailure};

use std::sync::Arc;

use super::Connection;
use super::session::SessionContext;
use crate::{algorithms, certs, route};

pub(crate) async fn run(
    ctx: SessionContext,
    host: String,
    port: u32,
    channel: Channel<Msg>,
    reply: ChannelOpenHandle,
) {
    // An unknown name still gets an inner server, so the person reads why on
    // their terminal instead of a bare "open failed".
    let (target, address) = match route::find_jump_target(&ctx.shared, &host, port).await {
        Ok(Some(found)) => (found.name, Some(found.host)),
        Ok(None) => (host, None),
        Err(error) => {
            tracing::error!(%error, "cannot look up ProxyJump target");
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return;
        }
    };
    let certificates = match certs::jump_host(&ctx.shared, &target, address.as_deref()).await {
        Ok(certificate) => vec![certificate],
        Err(error) => {
            // The hop still works with the plain host key; clients that insist
            // on the host CA will refuse it, which is the safe side.
            tracing::error!(%error, %target, "cannot issue the inner host certificate");
            Vec::new()
        }
    };
    let config = Arc::new(algorithms::jump_config(
        &ctx.shared.settings.front_ciphers,
        ctx.shared.settings.host_key.clone(),
        certificates,
    ));
    reply.accept().await;
    let inner = Connection::jump(
        ctx.shared.clone(),
        ctx.peer,
        ctx.person.clone(),
        target,
        ctx.auth_method,
    );
    match russh::server::run_stream(config, channel.into_stream(), inner).await {
        Ok(session) => {
            if let Err(error) = session.await {
                tracing::debug!(%error, "ProxyJump inner connection ended with an error");
            }
        }
        Err(error) => tracing::debug!(%error, "ProxyJump inner handshake failed"),
    }
}

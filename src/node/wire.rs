//! What crosses a node's TCP port: length-prefixed frames (a 4-byte big-endian length, then
//! that many bytes of MessagePack), the handshake that authenticates a member's link, and the
//! client protocol.
//!
//! A link is opened by its sender and carries messages one way. The opener says hello — its
//! cluster, its name (or that it is a client) and a fresh nonce; the acceptor answers with
//! its own nonce and a signature over both; a member then proves its name by signing both
//! nonces with its node key. A hello for another cluster, an unknown name or a bad signature
//! closes the connection before any engine message is read, and a frame longer than its
//! limit — or bytes that do not decode — close it too: nothing a peer sends can make a node
//! allocate more than one frame's limit or panic.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::chain::record::BlockRecord;
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::SigBytes;
use crate::sim::Request;

/// The longest frame between members: a few `AppendEntries` of full blocks fit many times.
pub const MAX_PEER_FRAME: usize = 32 << 20;
/// The longest frame a client may send (a submission of tens of thousands of requests).
pub const MAX_CLIENT_FRAME: usize = 4 << 20;
/// The longest frame before a link is authenticated.
pub const MAX_HELLO_FRAME: usize = 4 << 10;
/// The most requests one submission may carry.
pub const MAX_SUBMIT: usize = 100_000;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The length prefix is above the limit.
    #[error("a frame of {len} bytes is over the limit of {limit}")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes do not decode.
    #[error("undecodable frame: {0}")]
    Decode(String),
}

/// Encodes `value` as a frame's payload.
///
/// # Panics
/// Never for the protocol's types (MessagePack encodes every serde value they use).
#[must_use]
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("protocol types encode")
}

/// Decodes a frame's payload.
///
/// # Errors
/// [`FrameError::Decode`] when the bytes are not a `T`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    rmp_serde::from_slice(bytes).map_err(|e| FrameError::Decode(e.to_string()))
}

/// Reads one frame's payload of at most `limit` bytes; `None` at a clean end of stream.
///
/// # Errors
/// [`FrameError`]: I/O, a length over `limit`, or a stream that ends inside a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > limit {
        return Err(FrameError::TooLong { len, limit });
    }
    // Grown as bytes arrive: a peer that announces a large frame and sends little costs
    // little.
    let mut buf = Vec::with_capacity(len.min(64 << 10));
    r.take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() < len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(Some(buf))
}

/// Reads and decodes one frame; `None` at a clean end of stream.
///
/// # Errors
/// [`FrameError`].
pub async fn read_msg<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Option<T>, FrameError> {
    match read_frame(r, limit).await? {
        Some(bytes) => decode(&bytes).map(Some),
        None => Ok(None),
    }
}

/// Writes one frame holding `payload`.
///
/// # Errors
/// I/O errors.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "frame too long"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(payload).await
}

/// Encodes `value` and writes it as one frame.
///
/// # Errors
/// I/O errors.
pub async fn write_msg<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    value: &T,
) -> std::io::Result<()> {
    write_frame(w, &encode(value)).await
}

/// A nonce: fresh random bytes for each handshake.
pub type Nonce = [u8; 32];

/// A fresh nonce from the operating system's generator.
///
/// # Panics
/// When the operating system has no random source.
#[must_use]
pub fn nonce() -> Nonce {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).expect("the operating system's random source");
    n
}

/// The first frame on every connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Hello {
    /// A member opening its link to the acceptor.
    Peer {
        /// The cluster's identity ([`crate::node::config::Cluster::id`]).
        cluster: [u8; 32],
        /// The member's name.
        name: String,
        /// Its nonce.
        nonce: Nonce,
    },
    /// A client.
    Client {
        /// The cluster's identity.
        cluster: [u8; 32],
        /// Its nonce.
        nonce: Nonce,
    },
}

/// The acceptor's answer to a hello: who it is, its nonce, and its signature over both
/// nonces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Challenge {
    /// The acceptor's name.
    pub name: String,
    /// Its nonce.
    pub nonce: Nonce,
    /// Its node key's signature over [`transcript`]`(Acceptor, …)`.
    pub signature: SigBytes,
}

/// A member's proof of its name: its node key's signature over [`transcript`]`(Opener, …)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Auth {
    /// The signature.
    pub signature: SigBytes,
}

/// Which side of a handshake signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that opened the connection.
    Opener,
    /// The side that accepted it.
    Acceptor,
}

/// The bytes a side signs: a context string, the side, the cluster, both nonces (the
/// opener's first) and the signer's name. Each side's signature covers the other's fresh
/// nonce, so a recorded handshake cannot be replayed.
#[must_use]
pub fn transcript(
    side: Side,
    cluster: &[u8; 32],
    opener: &Nonce,
    acceptor: &Nonce,
    name: &str,
) -> Vec<u8> {
    let mut t = b"chainsmith/link/v1".to_vec();
    t.push(match side {
        Side::Opener => b'O',
        Side::Acceptor => b'A',
    });
    t.extend_from_slice(cluster);
    t.extend_from_slice(opener);
    t.extend_from_slice(acceptor);
    t.extend_from_slice(name.as_bytes());
    t
}

/// The per-link faults a node can be told to inject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FaultCmd {
    /// Cut the links between this node and these members, both ways.
    Cut(Vec<String>),
    /// Lose each message to or from these members (all when empty) with this probability.
    Drop {
        /// The members.
        peers: Vec<String>,
        /// The probability.
        probability: f64,
    },
    /// Delay each message this node sends to these members (all when empty).
    Delay {
        /// The members.
        peers: Vec<String>,
        /// Milliseconds.
        ms: u64,
    },
    /// Remove every fault.
    Heal,
}

/// What a client asks a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientCmd {
    /// Order these requests; the node answers each once it commits (on any node's lead).
    Submit(Vec<Request>),
    /// The node's status.
    Status,
    /// Every committed block from this height on, then each new one as it commits.
    Watch {
        /// The first height.
        from: u32,
    },
    /// Inject or remove link faults (refused unless the node allows fault injection).
    Fault(FaultCmd),
}

/// One link to a peer, as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerLink {
    /// The peer.
    pub name: String,
    /// Its address.
    pub address: String,
    /// Whether this node's link to it is up (authenticated).
    pub outbound: bool,
    /// Whether its link to this node is up.
    pub inbound: bool,
    /// Whether a fault cuts it.
    pub cut: bool,
}

/// A node's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub name: String,
    /// Its rule.
    pub rule: String,
    /// Its role (`leader`, `follower`, `candidate`, `primary`, `backup`…).
    pub role: String,
    /// The name of its term counter (`term`, `view`, `ballot`, `epoch`).
    pub term_name: String,
    /// Its term, view, ballot round or epoch.
    pub term: u64,
    /// The leader (or primary) it knows.
    pub leader: Option<String>,
    /// Its chain's height (blocks committed, genesis is 0).
    pub height: u32,
    /// Its chain's tip.
    pub tip: BlockHash,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// Its links.
    pub peers: Vec<PeerLink>,
    /// The faults it injects, described.
    pub faults: Vec<String>,
    /// A Byzantine mode it was started in.
    pub byzantine: Option<String>,
}

/// A committed block, as `watch` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSummary {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: BlockHash,
    /// Header time (Unix seconds).
    pub time: u32,
    /// Transactions, the seal included.
    pub txs: usize,
    /// Client requests it answers.
    pub requests: usize,
}

impl BlockSummary {
    /// The summary of `record`.
    #[must_use]
    pub fn of(record: &BlockRecord) -> Self {
        Self {
            height: record.height,
            hash: record.hash,
            time: record.time,
            txs: record.txs.len(),
            requests: record.requests().len(),
        }
    }
}

/// What a node answers a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientReply {
    /// A submitted request is committed in the block at this height.
    Committed {
        /// The request.
        request: Request,
        /// The block's height.
        height: u32,
    },
    /// The node's status.
    Status(Box<NodeStatus>),
    /// A block (for `Watch`).
    Block(BlockSummary),
    /// A fault command was applied; what the node now injects.
    FaultsNow(Vec<String>),
    /// The command was refused.
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::tx::KeyPair;

    #[tokio::test]
    async fn frames_round_trip_and_refuse_oversized_or_truncated_input() {
        let mut buf = Vec::new();
        write_msg(&mut buf, &ClientCmd::Watch { from: 7 })
            .await
            .unwrap();
        write_msg(&mut buf, &ClientCmd::Status).await.unwrap();
        let mut r = buf.as_slice();
        let a: ClientCmd = read_msg(&mut r, 64).await.unwrap().unwrap();
        assert!(matches!(a, ClientCmd::Watch { from: 7 }));
        let b: ClientCmd = read_msg(&mut r, 64).await.unwrap().unwrap();
        assert!(matches!(b, ClientCmd::Status));
        assert!(read_frame(&mut r, 64).await.unwrap().is_none());

        // A length over the limit is refused before anything is allocated for it.
        let huge = [0xff, 0xff, 0xff, 0xf0, 1, 2, 3];
        let err = read_frame(&mut huge.as_slice(), MAX_PEER_FRAME).await;
        assert!(matches!(err, Err(FrameError::TooLong { .. })), "{err:?}");
        // A frame cut short is an error, not a short payload.
        let short = [0, 0, 0, 10, 1, 2, 3];
        assert!(read_frame(&mut short.as_slice(), 64).await.is_err());
        // Garbage that fits the limit does not decode.
        let junk = [0, 0, 0, 3, 0xc1, 0xc1, 0xc1];
        assert!(
            read_msg::<ClientCmd, _>(&mut junk.as_slice(), 64)
                .await
                .is_err()
        );
    }

    #[test]
    fn a_handshake_signature_binds_side_cluster_nonces_and_name() {
        let key = KeyPair::from_secret("s1", [7; 32]);
        let (c, a, b) = ([1; 32], [2; 32], [3; 32]);
        let t = transcript(Side::Opener, &c, &a, &b, "s1");
        let sig = key.sign(&t);
        assert!(key.pubkey().verifies(&t, &sig));
        for other in [
            transcript(Side::Acceptor, &c, &a, &b, "s1"),
            transcript(Side::Opener, &[9; 32], &a, &b, "s1"),
            transcript(Side::Opener, &c, &b, &a, "s1"),
            transcript(Side::Opener, &c, &a, &b, "s2"),
        ] {
            assert!(!key.pubkey().verifies(&other, &sig));
        }
    }
}

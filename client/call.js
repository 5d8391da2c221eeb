// A call: one WebSocket for signalling, one RTCPeerConnection for media.
//
// Negotiation is collision-free by construction: the browser makes one
// offer (its own camera and microphone, or an ICE restart), the server
// makes every other offer (other participants' tracks). An offer from the
// server that arrives while our own offer is pending is ignored: the server
// drops it when it receives ours, and offers its changes again afterwards.
//
// Events: 'state' (detail: connecting | connected | reconnecting | left),
// 'participants' (the list or someone's state changed), 'chat' (detail:
// { from, name, text, mine }), 'full' (detail: room-full | server-full;
// waiting for a place, joining by itself when one frees), 'refused'
// (detail: { code, partners }; a new call the service does not start now),
// 'entered' (in after waiting, a refusal or the lobby), 'fatal' (detail:
// i18n key), 'password' (detail: password-required | password-wrong; the
// room is locked: set `password` and `join()`), 'lobby' (waiting to be let
// in), 'ended' (detail: i18n key of why: not let in, removed), 'room'
// (the room's settings or who waits in its lobby changed).

// A WebSocket whose network went away (Wi-Fi to 4G) stays "open" for
// minutes: we ping every PING_EVERY_MS, and one that brought nothing for
// SILENT_AFTER_MS is taken for dead and replaced.
const PING_EVERY_MS = 2000;
const SILENT_AFTER_MS = 6000;
// A media connection that stays disconnected this long restarts ICE
// (the browser may take half a minute to call it failed, or never).
const RESTART_AFTER_MS = 3000;
// Longest wait between two attempts to reach the server: short enough that
// a call is back within seconds of the server's return, however long it
// was gone. Each wait is jittered, so that the participants of a
// restarted server do not all knock at once.
const RECONNECT_MAX_MS = 4000;

// The camera is sent in several sizes (simulcast), smallest first: the
// worker forwards each subscriber the one that fits its bandwidth and its
// tile, and asks us to pause the sizes nobody receives. Chromium sends at
// most two sizes below 960×540 (three would lose the full size), so a
// 640-pixel camera sends a half and the full size, a 1280-pixel one a
// quarter, a half and the full size. The rates are ceilings: a weak uplink
// makes the browser drop the larger sizes by itself.
const RID_OF_SCALE = { 4: 'q', 2: 'h', 1: 'f' };

function layerRate(width) {
  if (width <= 200) return 60_000;
  if (width <= 360) return 100_000;
  if (width <= 720) return 600_000;
  return 1_500_000;
}

export function simulcastEncodings(track) {
  const width = track.getSettings().width || 640;
  const scales = width >= 960 ? [4, 2, 1] : width >= 480 ? [2, 1] : [1];
  if (scales.length === 1) return undefined;
  return scales.map((s) => ({ rid: RID_OF_SCALE[s], scaleResolutionDownBy: s, maxBitrate: layerRate(width / s) }));
}

// A shared screen: sharp rather than smooth (text must stay readable), at
// most this rate; one size, no simulcast.
const SCREEN_MAX_BITRATE = 1_500_000;
// While the room is full, a place is asked for this often.
const FULL_RETRY_MS = 5000;

/** The participant and what a remote stream of theirs carries, from its
 * id: "7" is participant 7's camera and microphone, "7-screen" its screen. */
export function streamOwner(streamId) {
  const m = /^(\d+)(-screen)?$/.exec(streamId);
  return m ? { id: Number(m[1]), screen: Boolean(m[2]) } : null;
}

// How long a first media connection may take before the person is told
// that none could be made from this network.
const NO_PATH_AFTER_MS = 20000;

/** Where a room's owner key is kept (`room-owner`), by room. */
const OWNER_PREFIX = 'parloir.owner.';

/** The key that makes this browser `room`'s owner, if it created it. */
function ownerKey(room) {
  try {
    return localStorage.getItem(OWNER_PREFIX + room);
  } catch {
    return null;
  }
}

export class Call extends EventTarget {
  constructor({ room, name, stream, relayOnly = false, acquire = null, grant = null, jwt = null }) {
    super();
    this.room = room;
    this.grant = grant; // a priority link's grant: the room may use the capacity kept for them
    this.jwt = jwt; // an invitation's room token: who may enter, under which name
    this.iceServers = []; // TURN servers with our credentials, from the welcome
    this.relayOnly = relayOnly; // media only through TURN (diagnostics, tests)
    this.name = name;
    this.stream = stream; // local MediaStream, possibly without tracks
    // Gets the camera and microphone again after waiting for a place (the
    // camera is released meanwhile).
    this.acquire = acquire;
    this.waiting = false; // the room was full: asking for a place
    this.readSending();
    this.hand = false;
    this.screenTrack = null; // the shared screen, while shared
    this.screenStream = new MediaStream();
    this.you = null;
    this.token = null; // lets us resume after losing the WebSocket
    this.participants = new Map(); // id -> { id, name, audio, video, screen, hand, stream, screenStream }
    this.speaker = null; // id of the one speaking, as the worker tells (maybe us)
    this.forwarded = null; // ids whose video the worker sends us (last-N); null: everyone's
    this.receiveVideo = true; // false: "audio only", for a very weak downlink
    this.tileSizes = []; // [{ id, width }]: how large we show each other video
    this.links = new Map(); // id -> { uplink, downlink }: 'good' | 'fair' | 'poor', as the worker sees them (ours too)
    this.midToStream = new Map(); // our receiving mid -> its stream id ("7", "7-screen")
    this.ws = null;
    this.pc = null;
    this.left = false;
    this.backoff = 500;
    this.resumes = 0; // sessions taken up again after a lost WebSocket
    this.queue = Promise.resolve();
    this.password = null; // a locked room's, as typed
    this.knocking = false; // waiting in the room's lobby
    this.moderator = false; // may lock the room, let in, remove
    this.locked = false;
    this.lobby = false;
    this.knocks = new Map(); // id -> name: who waits, told to moderators
    this.started = false; // media connected once: the call began
  }

  start() {
    this.emit('state', 'connecting');
    this.connect();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** The signalling socket was lost: with media still flowing, nothing
   * alarming to say (it resumes by itself); without, the server is out of
   * reach, or, for a call that never started, awaited. */
  signallingLost() {
    if (this.pc?.connectionState === 'connected') this.emit('state', 'resuming');
    else this.emit('state', this.started ? 'unreachable' : 'waiting-server');
  }

  /** The media connection was lost: the server is reached or not. */
  mediaLost() {
    const reached = this.ws?.readyState === WebSocket.OPEN;
    if (reached) this.emit('state', 'reconnecting');
    else this.emit('state', this.started ? 'unreachable' : 'waiting-server');
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    // A lost WebSocket does not end the call: media keeps flowing, and the
    // session is resumed on the new socket.
    ws.onopen = () => (this.you !== null && this.token ? this.resume() : this.join());
    let heard = Date.now();
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.ws !== ws || this.left) return clearInterval(this.pingTimer);
      if (ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - heard > SILENT_AFTER_MS) {
        // Gone with its network: no close will come in time.
        ws.onclose = ws.onmessage = null;
        ws.close();
        clearInterval(this.pingTimer);
        this.signallingLost();
        this.connect();
        return;
      }
      this.send({ type: 'ping' });
    }, PING_EVERY_MS);
    ws.onmessage = (e) => {
      heard = Date.now();
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      this.enqueue(() => this.handle(msg));
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.left) return;
      this.signallingLost();
      this.retryTimer = setTimeout(() => this.left || this.connect(), this.nextBackoff());
    };
  }

  /** The wait before the next attempt: doubling up to a few seconds, with
   * a fifth of it at random. */
  nextBackoff() {
    const wait = this.backoff * (0.8 + 0.4 * Math.random());
    this.backoff = Math.min(this.backoff * 2, RECONNECT_MAX_MS);
    return wait;
  }

  /** Runs `job` after every job before it (handlers are async: SDP). A job
   * that fails leaves the connection in a state nobody can reason about
   * (an offer half applied, a restart refused): the call starts over with
   * a clean join, and the queue goes on for what comes next. */
  enqueue(job) {
    this.queue = this.queue.then(job).catch((err) => {
      console.warn('parloir: negotiation failed, joining again:', err);
      this.rejoin();
    });
    return this.queue;
  }

  /** Starts the call over: a new media connection from a new join, on
   * the same signalling connection when it is up. */
  rejoin() {
    if (this.left) return;
    this.dropMedia();
    this.you = null;
    this.rejoinToken = this.token || this.rejoinToken;
    this.token = null;
    this.mediaLost();
    this.join();
  }

  /** "Retry now" (and "Try again" after a refusal): the next attempt
   * without waiting for the backoff. */
  retryNow() {
    if (this.left) return;
    this.backoff = 500;
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      if (this.you === null) this.join();
      else if (this.pc && this.pc.connectionState !== 'connected') this.restartIce();
    } else {
      if (this.ws) {
        this.ws.onclose = null;
        this.ws.close();
      }
      this.connect();
    }
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  join() {
    const join = { type: 'join', v: 1, room: this.room, name: this.name, audio: this.audio, video: this.video };
    if (this.grant) join.grant = this.grant;
    if (this.jwt) join.jwt = this.jwt;
    if (this.password) join.password = this.password;
    // Let in before: back in without knocking again.
    if (this.rejoinToken) join.rejoin = this.rejoinToken;
    // This browser created the room: its key makes it the moderator again.
    const owner = ownerKey(this.room);
    if (owner) join.owner = owner;
    this.send(join);
  }

  /** Tells the others what we send and show now. */
  sendState() {
    this.send({ type: 'state', audio: this.audio, video: this.video, screen: Boolean(this.screenTrack), hand: this.hand });
  }

  resume() {
    this.send({ type: 'resume', v: 1, room: this.room, participant: this.you, token: this.token });
  }

  async handle(msg) {
    switch (msg.type) {
      case 'welcome': {
        this.backoff = 500;
        this.you = msg.you;
        this.token = msg.token;
        // Who waits is told again right after (some may have gone meanwhile).
        this.knocks.clear();
        this.iceServers = msg.ice_servers || [];
        const old = new Map(this.participants);
        this.participants.clear();
        for (const p of msg.participants) {
          const was = old.get(p.id);
          this.participants.set(p.id, { ...p, stream: was?.stream || null, screenStream: was?.screenStream || null });
        }
        if (this.waiting) {
          // A place freed up: the camera and microphone again, then in.
          this.waiting = false;
          if (this.acquire) this.setStream(await this.acquire());
          this.emit('entered');
          this.emit('state', 'connecting');
        } else if (this.knocking) {
          this.knocking = false;
          this.emit('entered');
          this.emit('state', 'connecting');
        }
        this.emit('participants');
        // Our state may have changed while the server did not hear us.
        if (this.hand || this.screenTrack) this.sendState();
        // A new session on a new worker knows nothing of it yet.
        if (!this.receiveVideo) this.send({ type: 'receive-video', on: false });
        if (this.tileSizes.length) this.send({ type: 'video-sizes', tiles: this.tileSizes });
        if (msg.resumed) this.resumes += 1;
        if (msg.resumed && this.pc) {
          // Back on a new WebSocket: the media connection may have lost
          // its network too (a new address): new ICE checks from here.
          if (this.pc.connectionState === 'connected') this.emit('state', 'connected');
          else this.restartIce();
        } else {
          await this.startMedia();
        }
        break;
      }
      case 'answer':
        if (this.pc && this.pc.signalingState === 'have-local-offer') {
          await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        }
        break;
      case 'offer':
        if (!this.pc || this.pc.signalingState !== 'stable') return;
        await this.pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        await this.pc.setLocalDescription(await this.pc.createAnswer());
        this.send({ type: 'answer', id: msg.id, sdp: this.pc.localDescription.sdp });
        break;
      case 'participant-joined':
        this.participants.set(msg.participant.id, { ...msg.participant, stream: null, screenStream: null });
        this.emit('participants');
        break;
      case 'participant-left':
        this.participants.delete(msg.id);
        for (const [mid, sid] of this.midToStream) if (streamOwner(sid)?.id === msg.id) this.midToStream.delete(mid);
        this.emit('participants');
        break;
      case 'chat':
        this.emit('chat', { from: msg.from, name: msg.name, text: msg.text, mine: msg.from === this.you });
        break;
      case 'speaker':
        this.speaker = msg.id;
        this.emit('participants');
        break;
      case 'forwarded':
        this.forwarded = new Set(msg.video);
        this.emit('participants');
        break;
      case 'layers':
        await this.setLayers(msg.mid, msg.active);
        break;
      case 'quality':
        this.links = new Map(msg.links.map((l) => [l.id, l]));
        this.emit('quality');
        break;
      case 'state': {
        const p = this.participants.get(msg.id);
        if (p) Object.assign(p, { audio: msg.audio, video: msg.video, screen: msg.screen, hand: msg.hand });
        this.emit('participants');
        break;
      }
      case 'lobby':
        this.knocking = true;
        this.emit('lobby');
        break;
      case 'room-owner':
        // Created here: kept, so that whoever comes first into the room
        // later, knowing its name, cannot lock this browser out.
        try {
          localStorage.setItem(OWNER_PREFIX + this.room, msg.key);
        } catch {
          // Private browsing without storage: owned for this visit only.
        }
        break;
      case 'muted':
        // A moderator asked: the microphone goes off here, and only the
        // person turns it on again.
        if (this.audio) this.setMic(false);
        this.emit('muted');
        break;
      case 'room-settings':
        this.moderator = msg.moderator;
        this.locked = msg.locked;
        this.lobby = msg.lobby;
        if (!this.moderator) this.knocks.clear();
        this.emit('room');
        break;
      case 'knocking':
        this.knocks.set(msg.id, msg.name);
        this.emit('room');
        break;
      case 'knock-ended':
        this.knocks.delete(msg.id);
        this.emit('room');
        break;
      case 'error':
        this.onError(msg);
        break;
      default:
        break;
    }
  }

  onError({ code, message, partners = [] }) {
    console.warn(`parloir: ${code}: ${message}`);
    if (code === 'media-lost' || code === 'resume-failed') {
      // Our media connection is gone (its server failed or moved us):
      // join again, the room is placed on a live server.
      this.rejoin();
    } else if ((code === 'unavailable' || code === 'rate-limited') && this.you === null) {
      // No server now, or too many joins from this network (a ward behind
      // one address): try again later, by itself. No server for a call
      // that never started is a wait, not an interruption.
      if (code === 'unavailable' && !this.started) this.emit('state', 'waiting-server');
      else this.emit('state', 'reconnecting');
      this.retryTimer = setTimeout(() => this.left || this.join(), this.nextBackoff());
    } else if ((code === 'overloaded' || code === 'redirected') && this.you === null) {
      // The service starts no new call now: said with the partners to go
      // to. Nothing is retried by itself (a surge is not the time), the
      // camera is released, and "Try again" joins anew.
      this.waiting = true;
      this.dropMedia();
      this.emit('refused', { code, partners });
    } else if (code === 'grant-expired' || code === 'grant-invalid') {
      this.left = true;
      this.ws.close();
      this.emit('fatal', code === 'grant-expired' ? 'grantExpired' : 'grantInvalid');
    } else if (code === 'token-required' || code === 'token-expired' || code === 'token-invalid') {
      this.left = true;
      this.ws.close();
      this.emit('fatal', { 'token-required': 'tokenRequired', 'token-expired': 'tokenExpired', 'token-invalid': 'tokenInvalid' }[code]);
    } else if (code === 'invalid-name') {
      this.left = true;
      this.ws.close();
      this.emit('fatal', 'invalidName');
    } else if ((code === 'room-full' || code === 'server-full') && this.you === null) {
      // Wait for a place rather than give up: asked again every few
      // seconds on this socket, the camera released meanwhile. A full room
      // waits for someone to leave; a full server, for its load to fall.
      if (!this.waiting) {
        this.waiting = true;
        this.dropMedia();
      }
      this.emit('full', code);
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.left || this.join(), FULL_RETRY_MS * (0.8 + 0.4 * Math.random()));
    } else if ((code === 'password-required' || code === 'password-wrong') && this.you === null) {
      this.emit('password', code);
    } else if (['lobby-refused', 'removed', 'lobby-full', 'call-ended'].includes(code)) {
      // Not an outage: nothing to retry by itself.
      this.left = true;
      this.dropMedia();
      this.ws.close();
      this.emit('ended', {
        'lobby-refused': 'lobbyRefused', removed: 'removed', 'lobby-full': 'lobbyFull', 'call-ended': 'callEnded',
      }[code]);
    } else if (code === 'not-moderator') {
      // The role was taken back meanwhile: the controls go with it.
      this.emit('refusedAction', code);
    } else if (code === 'invalid-room' || code === 'unsupported-version') {
      this.left = true;
      this.ws.close();
      this.emit('fatal', 'invalidRoom');
    }
  }

  /** A moderator's door: a password (`null` unlocks), the lobby. */
  setPassword(password) {
    this.send({ type: 'set-password', password });
  }

  setLobby(on) {
    this.send({ type: 'set-lobby', on });
  }

  /** A moderator lets in (or refuses) someone waiting in the lobby. */
  admit(id, yes) {
    this.send({ type: yes ? 'admit' : 'refuse', id });
    this.knocks.delete(id);
    this.emit('room');
  }

  /** A moderator removes someone from the call. */
  remove(id) {
    this.send({ type: 'remove', id });
  }

  /** A moderator asks one person (`id`), or everyone else (no `id`), to
   * mute: only they can unmute. */
  mute(id) {
    this.send(id === undefined ? { type: 'mute-all' } : { type: 'mute', id });
  }

  /** A moderator makes someone a moderator too. */
  makeModerator(id) {
    this.send({ type: 'make-moderator', id });
  }

  /** A moderator ends the call for everyone. */
  endCall() {
    this.send({ type: 'end-call' });
  }

  async startMedia() {
    this.dropMedia();
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
      iceServers: this.iceServers,
      iceTransportPolicy: this.relayOnly ? 'relay' : 'all',
    });
    this.pc = pc;
    this.senders = {};
    for (const kind of ['audio', 'video']) {
      const track = this.stream.getTracks().find((t) => t.kind === kind);
      const init = { direction: 'sendonly', streams: [this.stream] };
      const encodings = kind === 'video' && track && simulcastEncodings(track);
      if (encodings) init.sendEncodings = encodings;
      this.senders[kind] = pc.addTransceiver(track || kind, init).sender;
    }
    // A screen shared when the call starts over goes with the first offer.
    const screen = this.screenTrack && this.addScreenTransceiver(pc);
    pc.ontrack = (e) => {
      const stream = e.streams[0];
      const owner = stream && streamOwner(stream.id);
      if (!owner) return;
      this.midToStream.set(e.transceiver.mid, stream.id);
      const p = this.participants.get(owner.id);
      if (p) p[owner.screen ? 'screenStream' : 'stream'] = stream;
      this.emit('participants');
    };
    pc.onicecandidate = (e) => {
      this.send({ type: 'candidate', candidate: e.candidate ? e.candidate.candidate : null });
    };
    // No path at all (UDP and TCP blocked, no TURN): said plainly, while
    // ICE keeps trying in the background.
    let connected = false;
    clearTimeout(this.noPathTimer);
    this.noPathTimer = setTimeout(() => {
      if (this.pc === pc && !connected) this.emit('state', 'no-path');
    }, NO_PATH_AFTER_MS);
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const s = pc.connectionState;
      if (s === 'connected') {
        connected = true;
        this.started = true;
        clearTimeout(this.noPathTimer);
        this.emit('state', 'connected');
      } else if (s === 'disconnected') {
        this.mediaLost();
        clearTimeout(this.restartTimer);
        this.restartTimer = setTimeout(() => {
          if (this.pc === pc && pc.connectionState !== 'connected') this.restartIce();
        }, RESTART_AFTER_MS);
      } else if (s === 'failed') {
        this.restartIce();
        if (!connected) this.emit('state', 'no-path');
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    if (screen) this.screenMid = screen.mid;
    this.send({ type: 'offer', sdp: pc.localDescription.sdp, screen: screen ? screen.mid : undefined });
  }

  addScreenTransceiver(pc) {
    return pc.addTransceiver(this.screenTrack, {
      direction: 'sendonly',
      streams: [this.screenStream],
      sendEncodings: [{ maxBitrate: SCREEN_MAX_BITRATE }],
    });
  }

  /** Shares `track` (from getDisplayMedia): its own m-line, negotiated
   * once by an offer of ours; later shares reuse it without a new offer. */
  shareScreen(track) {
    // Text stays readable when the link is short: with this hint the
    // browser drops frames, never pixels (its degradation preference
    // follows the hint), on this m-line and after a rejoin alike.
    if ('contentHint' in track) track.contentHint = 'detail';
    this.screenTrack = track;
    track.addEventListener('ended', () => this.stopScreen(track));
    return this.enqueue(async () => {
      const pc = this.pc;
      if (!pc || this.screenTrack !== track) return;
      const tr = this.screenMid && pc.getTransceivers().find((x) => x.mid === this.screenMid);
      if (tr) {
        await tr.sender.replaceTrack(track);
      } else {
        if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
        const added = this.addScreenTransceiver(pc);
        await pc.setLocalDescription(await pc.createOffer());
        this.screenMid = added.mid;
        this.send({ type: 'offer', sdp: pc.localDescription.sdp, screen: added.mid });
      }
      this.sendState();
    });
  }

  stopScreen(track = this.screenTrack) {
    if (!track || this.screenTrack !== track) return;
    this.screenTrack = null;
    track.stop();
    const tr = this.pc?.getTransceivers().find((x) => x.sender.track === track);
    if (tr) tr.sender.replaceTrack(null).catch(() => { /* closed */ });
    this.sendState();
    this.emit('participants');
  }

  /** Sends `track`, now in our stream, instead of the microphone or
   * camera it replaces (another device, or one that was missing): no
   * renegotiation, the others keep their picture. */
  async useTrack(track) {
    const sender = this.pc && this.senders[track.kind];
    if (sender) await sender.replaceTrack(track);
    this.readSending();
    this.sendState();
    this.emit('participants');
  }

  /** After waiting for a place: the stream to send from now on. */
  setStream(stream) {
    this.stream = stream;
    this.readSending();
  }

  /** What the others are told we send: only what really goes out. */
  readSending() {
    this.audio = this.stream.getAudioTracks().some((t) => t.enabled);
    this.video = this.stream.getVideoTracks().some((t) => t.enabled);
  }

  // The network changed under us (Wi-Fi to 4G...): new ICE credentials,
  // same connection, same tracks.
  // A restart that cannot be made (an offer of ours never answered while
  // the server was away) or is refused falls back to a clean join.
  restartIce() {
    if (this.pc && this.pc.connectionState !== 'connected') this.mediaLost();
    return this.enqueue(async () => {
      const pc = this.pc;
      if (!pc) return;
      // An offer of ours that was never answered (sent into a dead
      // WebSocket) is taken back; the new one replaces it.
      if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
      if (pc.signalingState !== 'stable') throw new Error(`ICE restart in state ${pc.signalingState}`);
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      this.send({ type: 'offer', sdp: pc.localDescription.sdp });
    });
  }

  dropMedia() {
    if (this.pc) {
      this.pc.ontrack = this.pc.onicecandidate = this.pc.onconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
    this.midToStream.clear();
    this.screenMid = null;
    this.senders = {};
    for (const p of this.participants.values()) p.stream = p.screenStream = null;
  }

  // Nobody receives some sizes of our camera: stop encoding them (a weak
  // uplink is not spent on pictures nobody sees), or start again.
  async setLayers(mid, active) {
    const tr = this.pc && this.pc.getTransceivers().find((x) => x.mid === mid);
    if (!tr) return;
    const params = tr.sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) return;
    for (const e of params.encodings) if (e.rid) e.active = active.includes(e.rid);
    // Not worth a new join if refused: the worker asks again when it
    // changes its mind, and meanwhile we only send more than needed.
    await tr.sender.setParameters(params).catch((err) => console.warn('parloir: layers:', err));
  }

  /** How large each other participant's video is shown, in device pixels. */
  setTileSizes(tiles) {
    if (JSON.stringify(tiles) === JSON.stringify(this.tileSizes)) return;
    this.tileSizes = tiles;
    // Before `welcome` the server would refuse it; `welcome` sends it then.
    if (this.you !== null) this.send({ type: 'video-sizes', tiles });
  }

  /** "Audio only": the worker stops sending us the others' video. */
  setReceiveVideo(on) {
    this.receiveVideo = on;
    this.send({ type: 'receive-video', on });
  }

  // On only with a device to be on: the others are never told we send
  // what we do not.
  setMic(on) {
    const tracks = this.stream.getAudioTracks();
    this.audio = on && tracks.length > 0;
    for (const t of tracks) t.enabled = this.audio;
    this.sendState();
  }

  setCam(on) {
    const tracks = this.stream.getVideoTracks();
    this.video = on && tracks.length > 0;
    for (const t of tracks) t.enabled = this.video;
    this.sendState();
  }

  setHand(up) {
    this.hand = up;
    this.sendState();
    this.emit('participants');
  }

  chat(text) {
    this.send({ type: 'chat', text });
  }

  leave() {
    this.left = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.restartTimer);
    clearTimeout(this.retryTimer);
    this.send({ type: 'leave' });
    if (this.ws) this.ws.close();
    if (this.screenTrack) this.screenTrack.stop();
    this.screenTrack = null;
    this.dropMedia();
    this.participants.clear();
    this.emit('participants');
    this.emit('state', 'left');
  }

  /**
   * What the user receives, per participant id, and under `self` what the
   * camera sends (with the repairs others asked for): what tests and
   * diagnostics read.
   */
  /** How the media goes: the selected candidate pair's local end and the
   * server's port, e.g. { type: 'relay', protocol: 'udp', port: 3478 }
   * (null before it is chosen). */
  async path() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    // Firefox has no transport stats: its pair says it is the selected one.
    if (!pair) report.forEach((s) => { if (s.type === 'candidate-pair' && s.selected) pair = s; });
    const local = pair && report.get(pair.localCandidateId);
    const remote = pair && report.get(pair.remoteCandidateId);
    return local ? { type: local.candidateType, protocol: local.protocol, port: remote && remote.port } : null;
  }

  async stats() {
    const out = {};
    if (!this.pc) return out;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        const o = (out.self ||= { packetsSent: 0, nackCount: 0, retransmitted: 0 });
        o.packetsSent += s.packetsSent || 0;
        o.nackCount += s.nackCount || 0;
        o.retransmitted += s.retransmittedPacketsSent || 0;
      }
      if (s.type !== 'inbound-rtp') return;
      // Under "7" participant 7's camera and microphone, under "7-screen"
      // its screen.
      const key = this.midToStream.get(s.mid);
      if (key === undefined) return;
      const o = (out[key] ||= {
        framesDecoded: 0, frameWidth: 0, frameHeight: 0, freezeCount: 0, freezesSeconds: 0,
        videoPacketsReceived: 0, videoPacketsLost: 0, nackCount: 0, retransmitted: 0,
        audioPacketsReceived: 0, audioPacketsLost: 0, audioEnergy: 0,
      });
      if (s.kind === 'video') {
        o.framesDecoded += s.framesDecoded || 0;
        o.frameWidth = Math.max(o.frameWidth, s.frameWidth || 0);
        o.frameHeight = Math.max(o.frameHeight, s.frameHeight || 0);
        o.freezeCount += s.freezeCount || 0;
        o.freezesSeconds += s.totalFreezesDuration || 0;
        o.videoPacketsReceived += s.packetsReceived || 0;
        o.videoPacketsLost += s.packetsLost || 0;
        // NACKs this receiver sent, and the repairs that came back.
        o.nackCount += s.nackCount || 0;
        o.retransmitted += s.retransmittedPacketsReceived || 0;
      } else {
        o.audioPacketsReceived += s.packetsReceived || 0;
        o.audioPacketsLost += s.packetsLost || 0;
        o.audioEnergy += s.totalAudioEnergy || 0;
      }
    });
    return out;
  }
}

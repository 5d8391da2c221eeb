// Screens of the web client: home, pre-join, call, full, busy, password,
// lobby, ended, left.
//
// URLs: `/` home; `/r/ROOM` pre-join then call; `/r/ROOM?name=NAME&join=1`
// joins at once (bedside tablets and kiosks open such links).

import { chooseLanguage, lang, languages, t, translatePage } from './i18n.js';
import { Call } from './call.js';
import { ReceiveWatch, worst } from './quality.js';
import { Devices } from './devices.js';

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[A-Za-z0-9_-]{3,64}$/;

let call = null;
let devices = null;
// Level of each other participant's video as received here (getStats).
let received = new Map();
// Tiles whose picture stopped coming (keys as in the grid).
let frozen = new Set();
// How our media goes: the selected candidate pair's local end.
let mediaPath = null;
// The tile shown large: pinned by a tap, else a shared screen, else (in
// speaker view) the one speaking.
let pinned = null;
let view = 'grid';
let panel = null; // 'chat' | 'people' | 'settings' | null
let unread = 0;

// Hook for tests and diagnostics: what this tab receives and shows.
window.parloir = {
  stats: () => (call ? call.stats() : Promise.resolve({})),
  path: () => (call ? call.path() : Promise.resolve(null)),
  // As when the network changes under the call (Wi-Fi to 4G).
  restartIce: () => (call ? call.restartIce() : Promise.resolve()),
  // The ICE username fragment in force: it changes with a restart.
  iceUfrag: () => call?.pc?.localDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1] ?? null,
  tiles: () => [...document.querySelectorAll('#grid .tile:not(.self)')].map((el) => ({
    id: Number.parseInt(el.dataset.id, 10), key: el.dataset.id, screen: el.classList.contains('screen'),
    name: el.querySelector('.name').textContent,
    audio: !el.classList.contains('mic-off'), video: !el.classList.contains('cam-off'),
    speaking: el.classList.contains('speaking'),
    forwarded: !el.classList.contains('not-forwarded'),
    frozen: el.classList.contains('frozen'),
    hand: el.classList.contains('hand'),
    large: el.classList.contains('focus'),
    link: el.querySelector('.link').dataset.level || null,
  })),
  state: () => ({
    you: call?.you ?? null,
    media: call?.pc?.connectionState ?? null,
    signalling: call?.ws?.readyState === WebSocket.OPEN,
    resumes: call?.resumes ?? 0,
    status: $('status').hidden ? null : $('status').textContent,
    link: document.querySelector('#grid .tile.self .link')?.dataset.level || null,
    weakUplink: !$('weak-uplink').hidden,
    weakDownlink: !$('weak-downlink').hidden,
    // What the others are told we send, and what really goes out.
    audio: call?.audio ?? null,
    video: call?.video ?? null,
    sending: call ? call.stream.getTracks().filter((tr) => tr.enabled && tr.readyState === 'live').map((tr) => tr.kind) : [],
    // The screen we share, at the size it is captured.
    screen: call?.screenTrack ? (({ width, height }) => ({ width, height }))(call.screenTrack.getSettings()) : null,
    // The room's door, as this tab is told it.
    moderator: call?.moderator ?? false,
    locked: call?.locked ?? false,
    lobby: call?.lobby ?? false,
    knocks: call ? [...call.knocks.values()] : [],
  }),
  // The screen shown: which `main` is visible.
  screen: () => document.querySelector('.screen:not([hidden])')?.id ?? null,
  // Sends a message as this page could (what the server refuses is
  // tested so; anyone can do the same from the browser's console).
  send: (msg) => call?.send(msg),
  devices: () => devices?.chosen() ?? null,
};

function show(screen) {
  for (const el of document.querySelectorAll('.screen')) el.hidden = el.id !== screen;
}

/** A new call the service does not start now: why, and the partner
 * services to start it on instead (those speaking our language first). */
function showRefused({ code, partners }) {
  const redirected = code === 'redirected';
  $('busy-title').textContent = t(redirected ? 'redirectedTitle' : 'busyTitle');
  $('busy-text').textContent = t(redirected ? 'redirectedText' : 'busyText');
  const ours = (p) => (p.languages?.length && !p.languages.includes(lang) ? 1 : 0);
  const list = $('partners');
  list.replaceChildren();
  for (const p of [...partners].sort((a, b) => ours(a) - ours(b))) {
    const a = document.createElement('a');
    a.href = p.url;
    a.rel = 'noopener noreferrer';
    a.className = 'partner';
    a.textContent = p.name;
    if (p.languages?.length) {
      const l = document.createElement('span');
      l.className = 'languages';
      l.textContent = ` (${p.languages.join(', ')})`;
      a.append(l);
    }
    const li = document.createElement('li');
    li.append(a);
    list.append(li);
  }
  $('partners-intro').hidden = partners.length === 0;
  list.hidden = partners.length === 0;
  show('busy');
}

function roomFromPath() {
  const m = location.pathname.match(/^\/r\/([^/]+)\/?$/);
  return m ? decodeURIComponent(m[1]) : null;
}

/** A priority link's grant: after `#`, so that it reaches no server's
 * logs and no page's Referer. */
function grantFromLink() {
  return new URLSearchParams(location.hash.slice(1)).get('grant');
}

/** An invitation's room token (`#jwt=`), after `#` for the same reason.
 * It names its bearer: the room's link to share never carries it. */
function jwtFromLink() {
  return new URLSearchParams(location.hash.slice(1)).get('jwt');
}

/** The room's link to share: a priority room's carries its grant. */
function roomLink(room) {
  const grant = grantFromLink();
  return `${location.origin}/r/${room}${grant ? `#grant=${encodeURIComponent(grant)}` : ''}`;
}

async function home() {
  show('home');
  $('new-call').onclick = async () => {
    const res = await fetch('/api/room-name');
    location.href = `/r/${await res.text()}`;
  };
  const typed = $('join-room');
  typed.oninput = () => typed.setCustomValidity('');
  $('join-form').onsubmit = (e) => {
    e.preventDefault();
    const room = roomSlug(typed.value);
    if (ROOM_RE.test(room)) {
      location.href = `/r/${room}`;
    } else {
      typed.setCustomValidity(t('roomNameHelp'));
      typed.reportValidity();
    }
  };
}

/** A room's name as people type it made into one a link carries: a name
 * that already is one stays as it is (names are case-sensitive), a
 * pasted link gives its room, and other text ("Réunion équipe") has its
 * accents dropped, spaces and marks made dashes ("reunion-equipe"). */
function roomSlug(typed) {
  const text = typed.trim();
  const linked = text.match(/\/r\/([^/?#\s]+)/);
  if (linked) return linked[1];
  if (ROOM_RE.test(text)) return text;
  return text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64);
}

/** Device problems are said on both the pre-join and the call screens:
 * whichever the person looks at (a kiosk never sees the pre-join). */
function showDeviceProblem(key) {
  for (const el of [$('device-error'), $('device-notice')]) {
    el.textContent = key ? t(key) : '';
    el.hidden = !key;
  }
}

async function prejoin(room, params) {
  devices = new Devices({ onProblem: showDeviceProblem });
  // A blank name (a kiosk link made with an empty field) is no name: the
  // pre-join screen asks for one instead of joining.
  // A name is kept for this tab (a reload, a rejoin), and on the device
  // only when the person asks: on a shared kiosk the next person must not
  // find the last one's name.
  const remembered = localStorage.getItem('parloir.name');
  const name = (params.get('name') || sessionStorage.getItem('parloir.name') || remembered || '').trim();
  if (params.get('join') === '1' && name) {
    enterCall(room);
    await devices.open(true, true);
    return startCall(room, name);
  }
  show('prejoin');
  $('devices-home').append($('devices'));
  $('prejoin-title').textContent = room;
  $('share-link').textContent = roomLink(room);
  $('prejoin-invite').onclick = () => invite(room);
  $('name').value = name;
  $('remember-name').checked = Boolean(remembered);
  await devices.open(true, true);
  const preview = () => {
    $('preview').srcObject = null;
    $('preview').srcObject = devices.stream;
  };
  preview();
  devices.onTrack = preview;
  // What is missing is not shown as on.
  $('pre-mic').checked = devices.has('audio');
  $('pre-cam').checked = devices.has('video');
  const toggle = (kind) => async (e) => {
    // A device that was refused or missing is asked for again.
    if (e.target.checked && !devices.has(kind)) await devices.retry(kind);
    e.target.checked = e.target.checked && devices.has(kind);
    devices.enable(kind, e.target.checked);
  };
  $('pre-mic').onchange = toggle('audio');
  $('pre-cam').onchange = toggle('video');
  $('prejoin-form').onsubmit = (e) => {
    e.preventDefault();
    const n = $('name').value.trim();
    if (!n) return;
    sessionStorage.setItem('parloir.name', n);
    if ($('remember-name').checked) localStorage.setItem('parloir.name', n);
    else localStorage.removeItem('parloir.name');
    enterCall(room);
    startCall(room, n);
  };
}

/** The call screen, before the devices are open (kiosk) or after. */
function enterCall(room) {
  show('call');
  $('call-title').textContent = room;
  $('devices-call').append($('devices'));
  showDeviceProblem(devices.problem);
  setStatus(t('connecting'));
  keepAwake();
}

function startCall(room, name) {
  // ?relay=1: media only through TURN (to check a TURN setup).
  const relayOnly = new URLSearchParams(location.search).get('relay') === '1';
  call = new Call({
    room, name, stream: devices.stream, relayOnly, grant: grantFromLink(), jwt: jwtFromLink(),
    // After waiting for a place: the devices as they were chosen.
    acquire: async () => { await devices.reopen(); return devices.stream; },
  });
  devices.onTrack = async (track) => {
    await call.useTrack(track);
    updateControls();
    render();
  };
  devices.onSpeaker = (id) => applySpeaker(id);
  call.addEventListener('participants', () => { render(); updateControls(); renderPeople(); });
  call.addEventListener('state', (e) => onState(e.detail));
  call.addEventListener('fatal', (e) => setStatus(t(e.detail)));
  call.addEventListener('chat', (e) => onChat(e.detail));
  call.addEventListener('full', (e) => {
    // The camera is released while waiting: its light goes off.
    devices.close();
    const server = e.detail === 'server-full';
    $('full-title').textContent = t(server ? 'serverFull' : 'roomFull');
    $('full-text').textContent = t(server ? 'serverFullWaiting' : 'roomFullWaiting');
    show('full');
  });
  call.addEventListener('refused', (e) => {
    devices.close();
    showRefused(e.detail);
  });
  call.addEventListener('entered', () => {
    show('call');
    keepAwake();
  });
  // A locked room: its password asked, then the same join again.
  call.addEventListener('password', (e) => {
    $('password-text').textContent = t(e.detail === 'password-wrong' ? 'passwordWrong' : 'passwordRequired');
    show('password');
    $('room-password').value = '';
    $('room-password').focus();
  });
  $('password-form').onsubmit = (e) => {
    e.preventDefault();
    const password = $('room-password').value;
    if (!password) return;
    call.password = password;
    show('call');
    setStatus(t('connecting'));
    call.join();
  };
  call.addEventListener('lobby', () => {
    show('lobby');
    // "Your camera is ready": seen, not only said.
    $('lobby-preview').srcObject = devices.stream;
  });
  $('lobby-leave').onclick = () => $('leave').onclick();
  call.addEventListener('ended', (e) => {
    devices.close();
    releaseWakeLock();
    $('ended-title').textContent = t(`${e.detail}Title`);
    $('ended-text').textContent = t(`${e.detail}Text`);
    show('ended');
  });
  call.addEventListener('room', () => { renderDoor(); renderPeople(); });
  $('lobby-toggle').onchange = (e) => call.setLobby(e.target.checked);
  $('lock-form').onsubmit = (e) => {
    e.preventDefault();
    const password = $('lock-password').value;
    if (!password) return;
    call.setPassword(password);
    $('lock-password').value = '';
  };
  $('unlock').onclick = () => call.setPassword(null);
  $('mute-all').onclick = () => call.mute();
  $('end-call').onclick = () => { $('end-call-confirm').hidden = false; $('end-call-no').focus(); };
  $('end-call-no').onclick = () => { $('end-call-confirm').hidden = true; };
  $('end-call-yes').onclick = () => call.endCall();
  call.addEventListener('muted', () => {
    setStatus(t('mutedByModerator'), 8000);
    announce(t('mutedByModerator'));
    updateControls();
    render();
    renderPeople();
  });
  call.addEventListener('refusedAction', () => setStatus(t('notModerator'), 5000));
  updateControls();
  label('more', t('more'));
  label('leave', t('leave'));
  $('alone-link').textContent = roomLink(room);
  $('alone-copy').onclick = () => invite(room);
  $('show-self').onclick = () => { selfHidden = false; render(); };
  $('retry-now').onclick = () => call.retryNow();
  $('busy-retry').onclick = () => call.retryNow();
  const toggleMic = () => deviceButton('audio');
  const toggleCam = () => deviceButton('video');
  $('toggle-mic').onclick = toggleMic;
  $('toggle-cam').onclick = toggleCam;
  const canShare = Boolean(navigator.mediaDevices?.getDisplayMedia);
  $('share-screen').hidden = !canShare;
  const toggleScreen = async () => {
    if (call.screenTrack) {
      call.stopScreen();
    } else {
      try {
        const s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
        await call.shareScreen(s.getVideoTracks()[0]);
      } catch (err) {
        // Cancelled in the browser's picker: nothing to say.
        if (err.name !== 'NotAllowedError' && err.name !== 'AbortError') setStatus(t('screenFailed'), 5000);
      }
    }
    updateControls();
    render();
  };
  $('share-screen').onclick = toggleScreen;
  const toggleHand = () => { call.setHand(!call.hand); updateControls(); };
  $('raise-hand').onclick = toggleHand;
  $('open-chat').onclick = () => openPanel('chat');
  $('open-people').onclick = () => openPanel('people');
  $('open-settings').onclick = () => openPanel('settings');
  $('close-panel').onclick = () => openPanel(null);
  $('more').onclick = () => {
    const open = $('more-controls').hidden;
    $('more-controls').hidden = !open;
    $('more').setAttribute('aria-expanded', String(open));
  };
  const toggleView = () => { view = view === 'grid' ? 'speaker' : 'grid'; updateControls(); render(); };
  $('toggle-view').onclick = toggleView;
  $('chat-form').onsubmit = (e) => {
    e.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    call.chat(text);
    $('chat-input').value = '';
  };
  // Enter sends, Shift+Enter is a new line (as in every messaging app).
  $('chat-input').onkeydown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('chat-form').requestSubmit();
    }
  };
  // A weak link is said in words, not only by the tiles' indicators: too
  // weak for video (what arrives here is poor, or the worker's estimate
  // of our downlink stays under the smallest pictures), audio only is one
  // click away; a poor uplink, the others may not see or hear us well.
  let weakHere = false;
  // A call interrupted (the server out of reach, no path) is no weak
  // link: nothing arrives because nothing can, and audio only would not
  // help. The notices wait for the call to be connected again.
  let interrupted = true;
  const showNotices = () => {
    const mine = call.links.get(call.you) || {};
    $('weak-downlink').hidden = interrupted || !call.receiveVideo
      || !(weakHere || mine.downlink === 'poor');
    $('weak-uplink').hidden = interrupted || mine.uplink !== 'poor';
  };
  call.addEventListener('state', (e) => {
    // Media flowing while the signalling comes back is no interruption.
    if (e.detail !== 'resuming') interrupted = e.detail !== 'connected';
    showNotices();
  });
  const setAudioOnly = (on) => {
    call.setReceiveVideo(!on);
    updateControls();
    showNotices();
  };
  $('audio-only').onclick = () => setAudioOnly(call.receiveVideo);
  $('switch-audio-only').onclick = () => setAudioOnly(true);
  const watch = new ReceiveWatch(call, (seen) => {
    weakHere = seen.weak;
    received = seen.received;
    frozen = seen.frozen;
    mediaPath = seen.path;
    showNotices();
    render();
  });
  call.addEventListener('quality', () => { showNotices(); render(); });
  $('invite').onclick = () => invite(call.room);
  $('leave').onclick = () => {
    watch.stop();
    call.leave();
    devices.close();
    releaseWakeLock();
    show('left');
    $('rejoin').onclick = () => location.reload();
  };
  // Shortcuts people know from other video-call services; never while
  // typing.
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || $('call').hidden) return;
    if (e.target.closest('input, textarea, select')) return;
    const action = {
      m: toggleMic, v: toggleCam, d: canShare ? toggleScreen : null, r: toggleHand,
      c: () => openPanel(panel === 'chat' ? null : 'chat'),
      p: () => openPanel(panel === 'people' ? null : 'people'),
      w: toggleView,
    }[e.key.toLowerCase()];
    if (action) {
      e.preventDefault();
      action();
    }
  });
  call.start();
  // Closing the tab leaves at once, instead of after the media times out.
  addEventListener('pagehide', () => call.left || call.leave());
  render();
}

/** The microphone or camera button: on and off, or, for a device that was
 * refused or is missing, asked for again. */
async function deviceButton(kind) {
  const on = kind === 'audio' ? call.audio : call.video;
  if (!on && !devices.has(kind)) {
    await devices.retry(kind);
    if (!devices.has(kind)) return;
  }
  if (kind === 'audio') call.setMic(!on);
  else call.setCam(!on);
  updateControls();
  render();
}

async function invite(room) {
  const url = roomLink(room);
  // The phone's share sheet where there is one (messages, mail...).
  if (navigator.share) {
    try {
      await navigator.share({ title: 'Parloir', text: t('inviteText'), url });
      return;
    } catch (err) {
      if (err.name === 'AbortError') return;
    }
  }
  try {
    await navigator.clipboard.writeText(url);
    setStatus(t('linkCopied'), 2000);
  } catch {
    setStatus(`${t('shareLink')} ${url}`, 8000);
  }
}

function openPanel(which) {
  panel = which;
  $('panel').hidden = !which;
  for (const [name, id] of [['chat', 'chat-panel'], ['people', 'people-panel'], ['settings', 'settings-panel']]) {
    $(id).hidden = which !== name;
  }
  if (which) {
    $('panel-title').textContent = t(which === 'people' ? 'people' : which);
    if (which === 'chat') {
      unread = 0;
      $('chat-input').focus();
    } else {
      $('close-panel').focus();
    }
  }
  for (const [name, id] of [['chat', 'open-chat'], ['people', 'open-people'], ['settings', 'open-settings']]) {
    $(id).setAttribute('aria-expanded', String(which === name));
  }
  updateControls();
}

function onChat({ name, text, mine }) {
  const li = document.createElement('li');
  li.className = mine ? 'mine' : '';
  const who = document.createElement('strong');
  who.textContent = mine ? t('you') : name;
  const time = document.createElement('time');
  // In the interface's language ("14:05" in French, not "2:05 PM").
  time.textContent = new Date().toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
  const body = document.createElement('p');
  // Text, never markup: what was typed is what is shown.
  body.textContent = text;
  li.append(who, ' ', time, body);
  $('chat-log').append(li);
  li.scrollIntoView({ block: 'end' });
  if (!mine) {
    if (panel !== 'chat') unread += 1;
    announce(`${t('messageFrom')} ${name}: ${text}`);
  }
  updateControls();
}

function announce(text) {
  $('announce').textContent = text;
}

let statusTimer = null;
function setStatus(text, ms) {
  const el = $('status');
  el.textContent = text || '';
  el.hidden = !text;
  clearTimeout(statusTimer);
  if (text && ms) statusTimer = setTimeout(() => setStatus(''), ms);
}

/** What each state of the call says. Each says what is wrong where it
 * is: the server out of reach is not the person's link, a call that never
 * started waits for a server rather than being interrupted, and the
 * signalling coming back while media flows ("resuming") says nothing. */
function onState(state) {
  $('retry-now').hidden = !['reconnecting', 'unreachable', 'waiting-server'].includes(state);
  // While interrupted, nothing on the tiles claims to be live.
  $('grid').classList.toggle('interrupted', ['reconnecting', 'unreachable', 'no-path'].includes(state));
  const said = {
    connecting: 'connecting',
    reconnecting: 'reconnecting',
    unreachable: 'unreachable',
    'waiting-server': 'waitingServer',
    'no-path': 'noPath',
  }[state];
  if (said) setStatus(t(said));
  else if (state === 'connected') setStatus(call.participants.size ? '' : t('alone'));
  else if (state === 'resuming') setStatus('');
}

function updateControls() {
  if (!call) return;
  // Each label says what a press does ("Mute", "Unmute"); a pressed state
  // on top would contradict it for a screen reader ("Mute, pressed" while
  // the microphone is on).
  label('toggle-mic', call.audio ? t('muteMic') : t('unmuteMic'));
  label('toggle-cam', call.video ? t('camOff') : t('camOn'));
  $('toggle-mic').classList.toggle('off', !call.audio);
  $('toggle-cam').classList.toggle('off', !call.video);
  label('share-screen', call.screenTrack ? t('stopSharing') : t('shareScreen'));
  $('share-screen').classList.toggle('on', Boolean(call.screenTrack));
  label('raise-hand', call.hand ? t('lowerHand') : t('raiseHand'));
  $('raise-hand').classList.toggle('on', call.hand);
  label('open-chat', unread ? `${t('chat')} (${unread})` : t('chat'));
  if (unread) $('open-chat').setAttribute('aria-label', `${t('chat')}, ${unread} ${t('unread')}`);
  else $('open-chat').removeAttribute('aria-label');
  $('toggle-view').textContent = view === 'grid' ? t('speakerView') : t('gridView');
  $('audio-only').setAttribute('aria-pressed', String(!call.receiveVideo));
}

/** A control's words: shown beside its icon, or only said and shown as a
 * tooltip where the bar is narrow. */
function label(id, text) {
  $(id).querySelector('.label').textContent = text;
  $(id).title = text;
}

function tile(key, name, self) {
  const el = document.createElement('figure');
  el.className = self ? 'tile self' : 'tile';
  el.dataset.id = key;
  el.innerHTML = '<video autoplay playsinline></video><div class="avatar" aria-hidden="true"></div>'
    + '<p class="frozen-label"></p>'
    + '<figcaption><span class="link" role="img"><i></i><i></i><i></i></span>'
    + '<span class="name"></span><span class="hand-icon" role="img"></span><span class="mic"></span></figcaption>';
  // One's own tile reads "Ana (you)": the initials are Ana's.
  el.querySelector('.avatar').textContent = initials(self ? call.name : name);
  el.querySelector('.frozen-label').textContent = t('frozen');
  el.querySelector('.name').textContent = name;
  el.querySelector('.hand-icon').setAttribute('aria-label', t('handRaised'));
  if (self) {
    el.querySelector('video').muted = true;
    selfTools(el);
  } else {
    // Tap or click anywhere on it to show this one large, again to stop:
    // a real button over the picture, for keyboards and screen readers.
    const enlarge = document.createElement('button');
    enlarge.className = 'enlarge';
    enlarge.onclick = () => { pinned = pinned === key ? null : key; render(); };
    el.prepend(enlarge);
  }
  return el;
}

// Your own picture floats in a corner over the others: it may be moved
// to another corner (dragged, or its button) or hidden (More brings it
// back), so that it never covers the face you came to see.
let selfHidden = false;
let selfCorner = 'br';
const CORNERS = ['br', 'bl', 'tl', 'tr'];

function selfTools(el) {
  const tools = document.createElement('div');
  tools.className = 'self-tools';
  const button = (cls, key, onclick) => {
    const b = document.createElement('button');
    b.className = cls;
    b.setAttribute('aria-label', t(key));
    b.title = t(key);
    b.onclick = onclick;
    tools.append(b);
  };
  button('move-self', 'moveSelf', () => {
    selfCorner = CORNERS[(CORNERS.indexOf(selfCorner) + 1) % CORNERS.length];
    render();
  });
  button('hide-self', 'hideSelf', () => { selfHidden = true; render(); $('more').focus(); });
  el.append(tools);
  // Dragged anywhere, it settles in the nearest corner.
  el.addEventListener('pointerdown', (e) => {
    if (e.target.closest('button') || $('grid').dataset.others === '0') return;
    el.setPointerCapture(e.pointerId);
    const start = { x: e.clientX, y: e.clientY };
    el.onpointermove = (m) => {
      el.style.translate = `${m.clientX - start.x}px ${m.clientY - start.y}px`;
    };
    el.onpointerup = (u) => {
      el.onpointermove = el.onpointerup = null;
      el.style.translate = '';
      const area = $('grid').getBoundingClientRect();
      const right = u.clientX > area.left + area.width / 2;
      const bottom = u.clientY > area.top + area.height / 2;
      selfCorner = (bottom ? 'b' : 't') + (right ? 'r' : 'l');
      render();
    };
  });
}

/** Up to two initials, whole characters (not half an emoji's UTF-16 pair). */
function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const first = (w) => [...w][0] || '';
  const letters = words.length > 1 ? first(words[0]) + first(words[words.length - 1]) : first(words[0] || '');
  return (letters || '?').toUpperCase();
}

function render() {
  const grid = $('grid');
  if (!call) return;
  const wanted = new Map([['self', {
    key: 'self', name: `${call.name} (${t('you').toLowerCase()})`, audio: call.audio, video: call.video,
    hand: call.hand, stream: call.stream,
  }]]);
  for (const p of call.participants.values()) {
    wanted.set(String(p.id), { ...p, key: String(p.id) });
    if (p.screen && p.screenStream) {
      wanted.set(`${p.id}-screen`, {
        key: `${p.id}-screen`, id: p.id, name: `${p.name} · ${t('screenOf')}`, audio: true, video: true,
        stream: p.screenStream, screen: true,
      });
    }
  }
  for (const el of [...grid.children]) if (!wanted.has(el.dataset.id)) el.remove();
  if (pinned && !wanted.has(pinned)) pinned = null;
  const screenKey = [...wanted.keys()].find((k) => k.endsWith('-screen'));
  const speakerKey = call.speaker !== null && call.speaker !== call.you && wanted.has(String(call.speaker)) ? String(call.speaker) : null;
  const focus = pinned || screenKey || (view === 'speaker' ? speakerKey || [...wanted.keys()].find((k) => k !== 'self') : null) || null;
  for (const [key, p] of wanted) {
    let el = grid.querySelector(`.tile[data-id="${key}"]`);
    if (!el) {
      el = tile(key, p.name, key === 'self');
      if (p.screen) el.classList.add('screen');
      grid.append(el);
    }
    const self = key === 'self';
    el.classList.toggle('mic-off', !p.screen && !p.audio);
    // Not among the recent speakers (last-N): the name, not a frozen frame.
    el.classList.toggle('not-forwarded', !self && !p.screen && call.forwarded !== null && !call.forwarded.has(p.id));
    const speaking = !p.screen && call.speaker !== null && String(call.speaker) === (self ? String(call.you) : key);
    el.classList.toggle('speaking', speaking);
    el.classList.toggle('hand', Boolean(p.hand));
    el.classList.toggle('frozen', frozen.has(key) && p.video && call.receiveVideo);
    el.classList.toggle('focus', key === focus);
    if (!self) {
      const enlarge = el.querySelector('.enlarge');
      enlarge.setAttribute('aria-pressed', String(key === pinned));
      enlarge.setAttribute('aria-label', `${t('enlarge')}: ${p.name}`);
      enlarge.title = key === pinned ? t('showSmaller') : t('enlarge');
    }
    el.querySelector('.name').title = speaking ? t('speaking') : '';
    el.classList.toggle('cam-off', !p.video || !p.stream || (self && !call.stream.getVideoTracks().length));
    // An icon with a name when it says something (muted), else nothing.
    const mic = el.querySelector('.mic');
    if (p.audio || p.screen) {
      mic.removeAttribute('role');
      mic.removeAttribute('aria-label');
    } else {
      mic.setAttribute('role', 'img');
      mic.setAttribute('aria-label', t('micOff'));
    }
    showLink(el.querySelector('.link'), self ? call.you : p.id, !self, p.screen);
    const video = el.querySelector('video');
    if (p.stream && video.srcObject !== p.stream) {
      video.srcObject = p.stream;
      if (!self && devices?.speakerId && video.setSinkId) video.setSinkId(devices.speakerId).catch(() => {});
      video.play().catch(() => {
        // Autoplay with sound refused (no click yet): play on the first touch.
        document.addEventListener('click', () => video.play(), { once: true });
      });
    }
  }
  grid.dataset.count = String(wanted.size);
  grid.dataset.others = String(wanted.size - 1);
  grid.dataset.selfCorner = selfCorner;
  // Hidden only while it floats over the others: alone, it is the call.
  const floating = wanted.size > 1;
  grid.querySelector('.tile.self').hidden = selfHidden && floating;
  $('show-self').hidden = !(selfHidden && floating);
  $('alone-invite').hidden = call.you === null || call.participants.size > 0;
  if (focus) grid.dataset.focus = focus;
  else delete grid.dataset.focus;
  if (call.participants.size && $('status').textContent === t('alone')) setStatus('');
  reportTileSizes();
}

// Whose hand was up at the last look: a hand that goes up is announced once.
let handsUp = new Set();

function renderPeople() {
  if (!call) return;
  const list = $('people');
  list.replaceChildren();
  const row = (name, p) => {
    const li = document.createElement('li');
    const n = document.createElement('span');
    n.textContent = name;
    const states = [
      p.audio ? null : t('micOff'), p.video ? null : t('camOffState'),
      p.screen ? t('sharingScreen') : null, p.hand ? t('handRaised') : null,
    ].filter(Boolean);
    const s = document.createElement('span');
    s.className = 'states';
    s.textContent = states.join(' · ');
    li.append(n, s);
    return li;
  };
  list.append(row(`${call.name} (${t('you').toLowerCase()})`, {
    audio: call.audio, video: call.video, screen: Boolean(call.screenTrack), hand: call.hand,
  }));
  for (const p of call.participants.values()) {
    const li = row(p.name, p);
    li.dataset.id = String(p.id);
    if (call.moderator) li.append(moderatorActions(p));
    list.append(li);
    // A hand that goes up is said, not only shown.
    if (p.hand && !handsUp.has(p.id)) announce(`${p.name}: ${t('handRaised')}`);
  }
  handsUp = new Set([...call.participants.values()].filter((p) => p.hand).map((p) => p.id));
  label('open-people', `${t('people')} (${call.participants.size + 1})`);
  $('moderator-tools').hidden = !call.moderator;
  if (!call.moderator) $('end-call-confirm').hidden = true;
}

// Whom a moderator is about to remove: asked once more in the list (no
// browser dialog: a kiosk may show none, and a slip of the finger on a
// tablet must not cost someone their call).
let confirmingRemoval = null;

/** A moderator's buttons for one person: ask to mute, make moderator,
 * remove (confirmed). Nobody else is shown them. */
function moderatorActions(p) {
  const actions = document.createElement('div');
  actions.className = 'actions row';
  const button = (cls, text, label, onclick) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = cls;
    b.textContent = text;
    if (label) b.setAttribute('aria-label', label);
    b.onclick = onclick;
    actions.append(b);
    return b;
  };
  const named = (key) => t(key).replace('{name}', p.name);
  if (confirmingRemoval === p.id) {
    const ask = document.createElement('span');
    ask.textContent = named('removeConfirm');
    actions.append(ask);
    button('confirm-remove danger', t('remove'), named('removeName'), () => {
      confirmingRemoval = null;
      call.remove(p.id);
    });
    button('cancel', t('cancel'), null, () => { confirmingRemoval = null; renderPeople(); });
    return actions;
  }
  if (p.audio) button('mute', t('muteOne'), named('muteName'), () => call.mute(p.id));
  button('make-moderator', t('makeModerator'), named('makeModeratorName'), () => call.makeModerator(p.id));
  button('remove', t('remove'), named('removeName'), () => {
    confirmingRemoval = p.id;
    renderPeople();
    $('people').querySelector(`li[data-id="${p.id}"] .cancel`)?.focus();
  });
  return actions;
}

/** A moderator's door: who knocks (at the top of the call, with large
 * buttons: a kiosk's moderator never opens a panel), the lobby and the
 * password in the people panel. */
function renderDoor() {
  const knocks = $('knock-list');
  knocks.replaceChildren();
  for (const [id, name] of call.knocks) {
    const li = document.createElement('li');
    li.className = 'notice';
    li.dataset.id = String(id);
    const text = document.createElement('span');
    text.textContent = t('knocking').replace('{name}', name);
    const yes = document.createElement('button');
    yes.className = 'primary admit';
    yes.textContent = t('letIn');
    yes.onclick = () => call.admit(id, true);
    const no = document.createElement('button');
    no.className = 'refuse';
    no.textContent = t('refuse');
    no.onclick = () => call.admit(id, false);
    li.append(text, yes, no);
    knocks.append(li);
  }
  $('knocks').hidden = call.knocks.size === 0;
  $('room-controls').hidden = !call.moderator;
  $('lobby-toggle').checked = call.lobby;
  $('lock-state').textContent = t(call.locked ? 'lockedState' : 'openState');
  $('unlock').hidden = !call.locked;
}

function applySpeaker(id) {
  for (const v of document.querySelectorAll('#grid .tile:not(.self) video')) {
    if (v.setSinkId) v.setSinkId(id).catch(() => {});
  }
}

// A tile's connection indicator: the worse of that participant's links as
// the worker sees them and, for the others, of its video as received here.
function showLink(el, id, remote, screen) {
  const links = screen ? null : call.links.get(id);
  const here = remote && !screen ? received.get(id) : undefined;
  if (!links && !here) {
    delete el.dataset.level;
    el.hidden = true;
    return;
  }
  const level = worst(links?.uplink, links?.downlink, here);
  el.hidden = false;
  el.dataset.level = level;
  const parts = [];
  if (links) parts.push(`${t('sending')}: ${t(links.uplink)}`, `${t('receiving')}: ${t(links.downlink)}`);
  if (here) parts.push(`${t('videoHere')}: ${t(here)}`);
  if (!remote && mediaPath) {
    const via = mediaPath.type === 'relay' ? t('viaRelay') : `${t('viaDirect')} ${(mediaPath.protocol || '').toUpperCase()}`;
    parts.push(via);
  }
  el.setAttribute('aria-label', `${t('connection')}: ${t(level)}`);
  el.title = `${t('connection')}: ${t(level)} (${parts.join(', ')})`;
}

// The screen stays on during a call (a bedside tablet is not touched for
// an hour); the lock goes when the page is hidden, so it is taken again.
let wakeLock = null;
async function keepAwake() {
  try {
    wakeLock = await navigator.wakeLock?.request('screen');
  } catch { /* not allowed (battery saver) or not supported */ }
}
function releaseWakeLock() {
  wakeLock?.release().catch(() => {});
  wakeLock = null;
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && call && !call.left && !$('call').hidden) keepAwake();
});

// The worker sends each video no larger than its tile shows it: tell it
// the sizes when the layout changes (debounced: a window being resized
// fires many times).
let sizesTimer = null;
function reportTileSizes() {
  clearTimeout(sizesTimer);
  sizesTimer = setTimeout(() => {
    if (!call) return;
    const tiles = [...$('grid').querySelectorAll('.tile:not(.self):not(.screen)')].map((el) => {
      const v = el.querySelector('video');
      // A whole picture is as wide as the tile, or narrower when the tile
      // is wider than the picture.
      const aspect = v.videoWidth && v.videoHeight ? v.videoWidth / v.videoHeight : 4 / 3;
      const width = Math.min(el.clientWidth, el.clientHeight * aspect) * devicePixelRatio;
      return { id: Number(el.dataset.id), width: Math.round(width) };
    });
    call.setTileSizes(tiles);
  }, 300);
}
new ResizeObserver(reportTileSizes).observe($('grid'));

translatePage();
// The language, chosen on the home and pre-join screens (each in its own
// words, marked with its language for screen readers).
for (const select of document.querySelectorAll('.language-choice')) {
  for (const [code, name] of Object.entries(languages)) {
    const option = new Option(name, code, false, code === lang);
    option.lang = code;
    select.append(option);
  }
  select.onchange = () => chooseLanguage(select.value);
}
const room = roomFromPath();
if (room === null) home();
else if (!ROOM_RE.test(room)) {
  home();
  $('home-error').textContent = t('invalidRoom');
  $('home-error').hidden = false;
}
else {
  // Which call a tab holds, among a person's other tabs.
  document.title = `${room} – Parloir`;
  prejoin(room, new URLSearchParams(location.search));
}

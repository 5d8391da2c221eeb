// Screens of the web client: home, pre-join, call, left.
//
// URLs: `/` home; `/r/ROOM` pre-join then call; `/r/ROOM?name=NAME&join=1`
// joins at once (bedside tablets and kiosks open such links).

import { t, translatePage } from './i18n.js';
import { Call } from './call.js';
import { ReceiveWatch, worst } from './quality.js';

const $ = (id) => document.getElementById(id);
const ROOM_RE = /^[A-Za-z0-9_-]{3,64}$/;

let call = null;
let localStream = new MediaStream();
// Level of each other participant's video as received here (getStats).
let received = new Map();
// How our media goes: the selected candidate pair's local end.
let mediaPath = null;

// Hook for tests and diagnostics: what this tab receives and shows.
window.parloir = {
  stats: () => (call ? call.stats() : Promise.resolve({})),
  path: () => (call ? call.path() : Promise.resolve(null)),
  // As when the network changes under the call (Wi-Fi to 4G).
  restartIce: () => (call ? call.restartIce() : Promise.resolve()),
  // The ICE username fragment in force: it changes with a restart.
  iceUfrag: () => call?.pc?.localDescription?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1] ?? null,
  tiles: () => [...document.querySelectorAll('#grid .tile:not(.self)')].map((el) => ({
    id: Number(el.dataset.id), name: el.querySelector('.name').textContent,
    audio: !el.classList.contains('mic-off'), video: !el.classList.contains('cam-off'),
    speaking: el.classList.contains('speaking'),
    forwarded: !el.classList.contains('not-forwarded'),
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
  }),
};

function show(screen) {
  for (const el of document.querySelectorAll('.screen')) el.hidden = el.id !== screen;
}

function roomFromPath() {
  const m = location.pathname.match(/^\/r\/([^/]+)\/?$/);
  return m ? decodeURIComponent(m[1]) : null;
}

async function home() {
  show('home');
  $('new-call').onclick = async () => {
    const res = await fetch('/api/room-name');
    location.href = `/r/${await res.text()}`;
  };
  $('join-form').onsubmit = (e) => {
    e.preventDefault();
    const room = $('join-room').value.trim();
    if (ROOM_RE.test(room)) location.href = `/r/${room}`;
  };
}

async function getMedia(audio, video) {
  if (!audio && !video) return new MediaStream();
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: audio && { echoCancellation: true, noiseSuppression: true },
      video: video && { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25 } },
    });
  } catch (err) {
    console.warn('parloir: getUserMedia', err);
    // Camera refused or absent: try the microphone alone before giving up.
    if (video && audio) {
      try { return await navigator.mediaDevices.getUserMedia({ audio: true }); } catch { /* none */ }
    }
    const el = $('device-error') || $('status');
    el.textContent = t('cameraRefused');
    el.hidden = false;
    return new MediaStream();
  }
}

async function prejoin(room, params) {
  // A blank name (a kiosk link made with an empty field) is no name: the
  // pre-join screen asks for one instead of joining.
  const name = (params.get('name') || localStorage.getItem('parloir.name') || '').trim();
  if (params.get('join') === '1' && name) {
    localStream = await getMedia(true, true);
    return enterCall(room, name);
  }
  show('prejoin');
  $('prejoin-title').textContent = room;
  $('share-link').textContent = `${location.origin}/r/${room}`;
  $('name').value = name;
  localStream = await getMedia(true, true);
  $('preview').srcObject = localStream;
  $('pre-mic').onchange = (e) => localStream.getAudioTracks().forEach((tr) => { tr.enabled = e.target.checked; });
  $('pre-cam').onchange = (e) => localStream.getVideoTracks().forEach((tr) => { tr.enabled = e.target.checked; });
  $('prejoin-form').onsubmit = (e) => {
    e.preventDefault();
    const n = $('name').value.trim();
    if (!n) return;
    localStorage.setItem('parloir.name', n);
    enterCall(room, n);
  };
}

function enterCall(room, name) {
  show('call');
  // ?relay=1: media only through TURN (to check a TURN setup).
  const relayOnly = new URLSearchParams(location.search).get('relay') === '1';
  call = new Call({ room, name, stream: localStream, relayOnly });
  call.addEventListener('participants', render);
  call.addEventListener('state', (e) => onState(e.detail));
  call.addEventListener('fatal', (e) => {
    setStatus(t(e.detail));
  });
  updateControls();
  $('retry-now').onclick = () => call.retryNow();
  $('toggle-mic').onclick = () => { call.setMic(!call.audio); updateControls(); render(); };
  $('toggle-cam').onclick = () => { call.setCam(!call.video); updateControls(); render(); };
  // A weak link is said in words, not only by the tiles' indicators: too
  // weak for video (what arrives here is poor, or the worker's estimate
  // of our downlink stays under the smallest pictures), audio only is one
  // click away; a poor uplink, the others may not see or hear us well.
  let weakHere = false;
  const showNotices = () => {
    const mine = call.links.get(call.you) || {};
    $('weak-downlink').hidden = !call.receiveVideo || !(weakHere || mine.downlink === 'poor');
    $('weak-uplink').hidden = mine.uplink !== 'poor';
  };
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
    mediaPath = seen.path;
    showNotices();
    render();
  });
  call.addEventListener('quality', () => { showNotices(); render(); });
  $('copy-link').onclick = async () => {
    try { await navigator.clipboard.writeText(`${location.origin}/r/${room}`); setStatus(t('linkCopied'), 2000); } catch { /* not allowed */ }
  };
  $('leave').onclick = () => {
    watch.stop();
    call.leave();
    localStream.getTracks().forEach((tr) => tr.stop());
    show('left');
    $('rejoin').onclick = () => location.reload();
  };
  call.start();
  // Closing the tab leaves at once, instead of after the media times out.
  addEventListener('pagehide', () => call.left || call.leave());
  render();
}

let statusTimer = null;
function setStatus(text, ms) {
  const el = $('status');
  el.textContent = text || '';
  el.hidden = !text;
  clearTimeout(statusTimer);
  if (text && ms) statusTimer = setTimeout(() => setStatus(''), ms);
}

function onState(state) {
  $('retry-now').hidden = state !== 'reconnecting';
  if (state === 'connecting') setStatus(t('connecting'));
  else if (state === 'reconnecting') setStatus(t('reconnecting'));
  else if (state === 'no-path') setStatus(t('noPath'));
  else if (state === 'connected') setStatus(call.participants.size ? '' : t('alone'));
}

function updateControls() {
  // Each label says what a press does ("Mute", "Unmute"); a pressed state
  // on top would contradict it for a screen reader ("Mute, pressed" while
  // the microphone is on).
  $('toggle-mic').textContent = call.audio ? t('muteMic') : t('unmuteMic');
  $('toggle-cam').textContent = call.video ? t('camOff') : t('camOn');
  $('audio-only').setAttribute('aria-pressed', String(!call.receiveVideo));
}

function tile(id, name, self) {
  const el = document.createElement('figure');
  el.className = self ? 'tile self' : 'tile';
  el.dataset.id = id;
  el.innerHTML = '<video autoplay playsinline></video><div class="avatar"></div>'
    + '<figcaption><span class="link" role="img"><i></i><i></i><i></i></span>'
    + '<span class="name"></span><span class="mic" aria-hidden="true"></span></figcaption>';
  // The first character, not the first half of an emoji's UTF-16 pair.
  el.querySelector('.avatar').textContent = ([...name.trim()][0] || '?').toUpperCase();
  el.querySelector('.name').textContent = name;
  if (self) el.querySelector('video').muted = true;
  return el;
}

function render() {
  const grid = $('grid');
  if (!call) return;
  const wanted = new Map([['self', { id: 'self', name: t('you'), audio: call.audio, video: call.video, stream: localStream }]]);
  for (const p of call.participants.values()) wanted.set(String(p.id), p);
  for (const el of [...grid.children]) if (!wanted.has(el.dataset.id)) el.remove();
  for (const [key, p] of wanted) {
    let el = grid.querySelector(`.tile[data-id="${key}"]`);
    if (!el) {
      el = tile(key, p.name, key === 'self');
      grid.append(el);
    }
    el.classList.toggle('mic-off', !p.audio);
    // Not among the recent speakers (last-N): the name, not a frozen frame.
    el.classList.toggle('not-forwarded', key !== 'self' && call.forwarded !== null && !call.forwarded.has(p.id));
    const speaking = call.speaker !== null && String(call.speaker) === (key === 'self' ? String(call.you) : key);
    el.classList.toggle('speaking', speaking);
    el.querySelector('.name').title = speaking ? t('speaking') : '';
    el.classList.toggle('cam-off', !p.video || !p.stream);
    el.querySelector('.mic').title = p.audio ? '' : t('micOff');
    showLink(el.querySelector('.link'), key === 'self' ? call.you : p.id, key !== 'self');
    const video = el.querySelector('video');
    if (p.stream && video.srcObject !== p.stream) {
      video.srcObject = p.stream;
      video.play().catch(() => {
        // Autoplay with sound refused (no click yet): play on the first touch.
        document.addEventListener('click', () => video.play(), { once: true });
      });
    }
  }
  grid.dataset.count = String(wanted.size);
  grid.dataset.others = String(wanted.size - 1);
  if (call.participants.size && $('status').textContent === t('alone')) setStatus('');
  reportTileSizes();
}

// A tile's connection indicator: the worse of that participant's links as
// the worker sees them and, for the others, of its video as received here.
function showLink(el, id, remote) {
  const links = call.links.get(id);
  const here = remote ? received.get(id) : undefined;
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

// The worker sends each video no larger than its tile shows it: tell it
// the sizes when the layout changes (debounced: a window being resized
// fires many times).
let sizesTimer = null;
function reportTileSizes() {
  clearTimeout(sizesTimer);
  sizesTimer = setTimeout(() => {
    if (!call) return;
    const tiles = [...$('grid').querySelectorAll('.tile:not(.self)')].map((el) => {
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
const room = roomFromPath();
if (room === null) home();
else if (!ROOM_RE.test(room)) {
  home();
  $('home-error').textContent = t('invalidRoom');
  $('home-error').hidden = false;
}
else prejoin(room, new URLSearchParams(location.search));

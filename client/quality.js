// Connection quality as this browser sees it, from getStats(), beside what
// the worker says of everyone's links (`quality` messages).
//
// Every EVERY_MS, for each other participant whose video is forwarded to
// us: frames decoded per second and the share of its packets lost. Over the
// last WINDOW samples:
// - each video gets a level (poor under MIN_FPS or over MAX_LOSS; fair
//   under FAIR_FPS or over FAIR_LOSS), shown on its tile with the worker's
//   view of that participant's links;
// - the downlink is weak when the videos together are poor: the call then
//   proposes "audio only". One bad sample is not enough (a keyframe burst,
//   a hiccup).
// - a camera whose frames stopped between two samples (it decoded before,
//   it is on and forwarded to us) is frozen: its tile says so rather than
//   show an old picture as if it were live.

const EVERY_MS = 2000;
const WINDOW = 3;
const MIN_FPS = 8;
const MAX_LOSS = 0.1;
const FAIR_FPS = 15;
const FAIR_LOSS = 0.02;

export const LEVELS = ['good', 'fair', 'poor'];

/** The worse of some levels ('good' when none). */
export function worst(...levels) {
  return levels.reduce((a, l) => (LEVELS.indexOf(l) > LEVELS.indexOf(a) ? l : a), 'good');
}

function level(fps, loss) {
  if (fps < MIN_FPS || loss > MAX_LOSS) return 'poor';
  if (fps < FAIR_FPS || loss > FAIR_LOSS) return 'fair';
  return 'good';
}

/** Rates over the last WINDOW samples of counters that only grow. */
class Window {
  constructor() {
    this.last = null;
    this.samples = [];
  }

  push(totals) {
    const last = this.last;
    this.last = totals;
    if (!last || totals.videos === 0 || totals.videos !== last.videos) {
      this.samples = [];
      return null;
    }
    const packets = (totals.received - last.received) + (totals.lost - last.lost);
    this.samples.push({
      fps: (totals.frames - last.frames) / totals.videos / (EVERY_MS / 1000),
      loss: packets > 0 ? (totals.lost - last.lost) / packets : 0,
    });
    if (this.samples.length > WINDOW) this.samples.shift();
    if (this.samples.length < WINDOW) return null;
    const avg = (k) => this.samples.reduce((a, s) => a + s[k], 0) / this.samples.length;
    return level(avg('fps'), avg('loss'));
  }
}

export class ReceiveWatch {
  /** `onChange({ weak, received, frozen, path })` after a sample that
   * changed any: `path` is how our media goes (`call.path()`), `frozen`
   * the ids (as strings) of cameras that stopped. */
  constructor(call, onChange) {
    this.call = call;
    this.onChange = onChange;
    this.all = new Window();
    this.each = new Map(); // id -> Window
    this.weak = false;
    this.received = new Map(); // id -> level of its video here
    this.frames = new Map(); // id -> frames decoded at the last sample
    this.frozen = new Set();
    this.path = null;
    this.timer = setInterval(() => this.sample(), EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async sample() {
    const stats = this.call.receiveVideo ? await this.call.stats() : {};
    const totals = { frames: 0, received: 0, lost: 0, videos: 0 };
    const received = new Map();
    const frozen = new Set();
    const frames = new Map();
    for (const [key, s] of Object.entries(stats)) {
      const id = Number(key);
      if (key === 'self' || (this.call.forwarded && !this.call.forwarded.has(id))) continue;
      const p = this.call.participants.get(id);
      if (!p || !p.video) continue;
      frames.set(key, s.framesDecoded);
      const before = this.frames.get(key);
      if (before > 0 && s.framesDecoded === before) frozen.add(key);
      const mine = {
        frames: s.framesDecoded, received: s.videoPacketsReceived, lost: s.videoPacketsLost, videos: 1,
      };
      for (const k of Object.keys(totals)) totals[k] += mine[k];
      if (!this.each.has(id)) this.each.set(id, new Window());
      const l = this.each.get(id).push(mine);
      if (l) received.set(id, l);
    }
    for (const id of this.each.keys()) if (!(String(id) in stats)) this.each.delete(id);
    const all = this.all.push(totals);
    const weak = all === 'poor';
    const path = await this.call.path();
    this.frames = frames;
    const same = weak === this.weak && received.size === this.received.size
      && frozen.size === this.frozen.size && [...frozen].every((k) => this.frozen.has(k))
      && [...received].every(([id, l]) => this.received.get(id) === l)
      && JSON.stringify(path) === JSON.stringify(this.path);
    this.weak = weak;
    this.received = received;
    this.frozen = frozen;
    this.path = path;
    if (!same) this.onChange({ weak, received, frozen, path });
  }
}

// Watches what this browser receives, from getStats(), and says when the
// downlink is too weak for video: the call then proposes "audio only".
//
// Weak: over the last WINDOW samples (2 s apart), the videos that are
// forwarded to us decode under MIN_FPS frames per second on average, or
// lose more than MAX_LOSS of their packets. One bad sample is not enough
// (a keyframe burst, a hiccup); a good one resets nothing at once either.

const EVERY_MS = 2000;
const WINDOW = 3;
const MIN_FPS = 8;
const MAX_LOSS = 0.1;

export class DownlinkWatch {
  constructor(call, onChange) {
    this.call = call;
    this.onChange = onChange;
    this.samples = [];
    this.last = null;
    this.weak = false;
    this.timer = setInterval(() => this.sample(), EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async sample() {
    if (!this.call.receiveVideo) return this.set(false);
    const stats = await this.call.stats();
    const totals = { frames: 0, received: 0, lost: 0, videos: 0 };
    for (const [id, s] of Object.entries(stats)) {
      if (id === 'self' || (this.call.forwarded && !this.call.forwarded.has(Number(id)))) continue;
      const p = this.call.participants.get(Number(id));
      if (!p || !p.video) continue;
      totals.frames += s.framesDecoded;
      totals.received += s.videoPacketsReceived;
      totals.lost += s.videoPacketsLost;
      totals.videos += 1;
    }
    const last = this.last;
    this.last = totals;
    if (!last || totals.videos === 0 || totals.videos !== last.videos) {
      this.samples = [];
      return this.set(false);
    }
    const packets = (totals.received - last.received) + (totals.lost - last.lost);
    this.samples.push({
      fps: (totals.frames - last.frames) / totals.videos / (EVERY_MS / 1000),
      loss: packets > 0 ? (totals.lost - last.lost) / packets : 0,
    });
    if (this.samples.length > WINDOW) this.samples.shift();
    if (this.samples.length < WINDOW) return undefined;
    const avg = (k) => this.samples.reduce((a, s) => a + s[k], 0) / this.samples.length;
    return this.set(avg('fps') < MIN_FPS || avg('loss') > MAX_LOSS);
  }

  set(weak) {
    if (weak !== this.weak) {
      this.weak = weak;
      this.onChange(weak);
    }
  }
}

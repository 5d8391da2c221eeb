// The camera, microphone and speaker: which are used, what went wrong
// with them, and how loud the microphone is.
//
// One MediaStream for the whole page: the pre-join preview, the call's own
// tile and what the call sends all show it. A device changed or found again
// replaces its track in that stream, and `onTrack` tells the call, which
// sends the new track without renegotiating.

const AUDIO = { echoCancellation: true, noiseSuppression: true };
const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25 } };
const LEVEL_EVERY_MS = 100;

async function userMedia(constraints) {
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    console.warn('parloir: getUserMedia', constraints, err.name);
    return null;
  }
}

export class Devices {
  constructor({ onProblem }) {
    this.stream = new MediaStream();
    this.onProblem = onProblem;
    this.onTrack = () => {};
    this.onSpeaker = () => {};
    this.wanted = { audio: true, video: true };
    this.ids = { audio: null, video: null }; // chosen device ids
    this.speakerId = null;
    this.problem = null; // i18n key of what is missing, or null
    this.meterTimer = null;
    this.bindSelects();
  }

  has(kind) {
    return this.stream.getTracks().some((t) => t.kind === kind && t.readyState === 'live');
  }

  constraints(kind) {
    const base = kind === 'audio' ? AUDIO : VIDEO;
    return this.ids[kind] ? { ...base, deviceId: { exact: this.ids[kind] } } : base;
  }

  /** Opens the devices wanted; says what could not be had. */
  async open(audio, video) {
    this.wanted = { audio, video };
    let s = (audio || video) && await userMedia({
      audio: audio && this.constraints('audio'), video: video && this.constraints('video'),
    });
    if (!s) {
      // One of them refused or absent: each alone, to keep the other.
      s = new MediaStream();
      for (const kind of ['audio', 'video']) {
        if (!this.wanted[kind]) continue;
        const one = await userMedia({ [kind]: this.constraints(kind) });
        if (one) one.getTracks().forEach((t) => s.addTrack(t));
      }
    }
    for (const t of s.getTracks()) this.put(t);
    this.said();
    // Not waited for: Firefox answers enumerateDevices() only once the
    // window has focus, and a bedside tablet's kiosk tab may never get it
    // (it stayed on "Connecting…"). The pickers fill in when it answers.
    this.list();
    this.startMeter();
  }

  /** After waiting for a place: the same devices again, on or off as they were. */
  async reopen() {
    const was = { ...this.enabled };
    await this.open(this.wanted.audio, this.wanted.video);
    for (const t of this.stream.getTracks()) if (t.kind in was) t.enabled = was[t.kind];
  }

  /** Asks again for a device that was refused or missing, or for the one
   * just chosen; the call is given the new track. */
  async retry(kind) {
    const s = await userMedia({ [kind]: this.constraints(kind) });
    if (s) {
      const track = s.getTracks()[0];
      this.put(track);
      await this.onTrack(track);
      // Names appear once access is given.
      await this.list();
      if (kind === 'audio') this.startMeter();
    }
    this.said();
  }

  enable(kind, on) {
    for (const t of this.stream.getTracks()) if (t.kind === kind) t.enabled = on;
  }

  /** Stops every device: the camera's light goes off. */
  close() {
    this.enabled = Object.fromEntries(this.stream.getTracks().map((t) => [t.kind, t.enabled]));
    for (const t of this.stream.getTracks()) {
      t.stop();
      this.stream.removeTrack(t);
    }
    clearInterval(this.meterTimer);
    this.meterTimer = null;
  }

  /** Puts `track` in the stream in place of the one of its kind, keeping
   * its on/off state. */
  put(track) {
    const old = this.stream.getTracks().find((t) => t.kind === track.kind);
    if (old) {
      track.enabled = old.enabled;
      this.stream.removeTrack(old);
      old.stop();
    }
    this.stream.addTrack(track);
    this.ids[track.kind] = track.getSettings().deviceId || this.ids[track.kind];
  }

  said() {
    const audio = !this.wanted.audio || this.has('audio');
    const video = !this.wanted.video || this.has('video');
    this.problem = audio && video ? null : !audio && !video ? 'noDevices' : audio ? 'noCamera' : 'noMic';
    this.onProblem(this.problem);
  }

  /** Fills the choices (names are known once access was given). */
  async list() {
    let all = [];
    try {
      all = await navigator.mediaDevices.enumerateDevices();
    } catch { /* none */ }
    const fill = (select, kind, current) => {
      const mine = all.filter((d) => d.kind === kind && d.deviceId);
      select.replaceChildren(...mine.map((d, i) => {
        const o = document.createElement('option');
        o.value = d.deviceId;
        o.textContent = d.label || `${kind} ${i + 1}`;
        o.selected = d.deviceId === current;
        return o;
      }));
      select.disabled = mine.length === 0;
    };
    fill(document.getElementById('camera-select'), 'videoinput', this.ids.video);
    fill(document.getElementById('mic-select'), 'audioinput', this.ids.audio);
    const speakers = all.filter((d) => d.kind === 'audiooutput' && d.deviceId);
    // Choosing where sound goes needs setSinkId (not on every browser).
    const canChoose = 'setSinkId' in HTMLMediaElement.prototype && speakers.length > 0;
    document.getElementById('speaker-choice').hidden = !canChoose;
    if (canChoose) fill(document.getElementById('speaker-select'), 'audiooutput', this.speakerId);
  }

  bindSelects() {
    const change = (kind) => (e) => {
      this.ids[kind] = e.target.value;
      return this.retry(kind);
    };
    document.getElementById('camera-select').onchange = change('video');
    document.getElementById('mic-select').onchange = change('audio');
    document.getElementById('speaker-select').onchange = (e) => {
      this.speakerId = e.target.value;
      this.onSpeaker(this.speakerId);
    };
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.list());
  }

  /** What is in use, by name: for tests and diagnostics. */
  chosen() {
    const label = (kind) => this.stream.getTracks().find((t) => t.kind === kind)?.label ?? null;
    return { camera: label('video'), microphone: label('audio'), speaker: this.speakerId };
  }

  /** The microphone level meter: how loud, refreshed while it is shown. */
  startMeter() {
    const track = this.stream.getAudioTracks()[0];
    const meter = document.getElementById('mic-level');
    document.getElementById('mic-level-label').hidden = !track;
    if (!track || typeof AudioContext === 'undefined') return;
    this.audioContext ||= new AudioContext();
    // Started by the first touch where the browser holds it back.
    if (this.audioContext.state === 'suspended') {
      document.addEventListener('click', () => this.audioContext.resume(), { once: true });
    }
    this.source?.disconnect();
    this.source = this.audioContext.createMediaStreamSource(new MediaStream([track]));
    const analyser = this.audioContext.createAnalyser();
    analyser.fftSize = 512;
    this.source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    clearInterval(this.meterTimer);
    this.meterTimer = setInterval(() => {
      if (meter.offsetParent === null) return;
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const v of samples) sum += v * v;
      // Root mean square, brought up so that speech fills half the bar.
      meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    }, LEVEL_EVERY_MS);
  }
}

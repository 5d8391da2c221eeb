// Interface texts in English and French, chosen from the browser's language.

const texts = {
  en: {
    tagline: 'Video calls in your browser. Nothing to install: share the link.',
    newCall: 'Start a new call',
    roomPlaceholder: 'Room name',
    joinByName: 'Join',
    yourName: 'Your name',
    microphone: 'Microphone',
    camera: 'Camera',
    join: 'Join the call',
    shareLink: 'Share this link to invite others:',
    copyLink: 'Copy link',
    linkCopied: 'Link copied',
    leave: 'Leave',
    youLeft: 'You left the call.',
    rejoin: 'Join again',
    home: 'Home',
    you: 'You',
    muteMic: 'Mute',
    unmuteMic: 'Unmute',
    camOff: 'Stop video',
    camOn: 'Start video',
    micOff: 'Microphone off',
    speaking: 'Speaking',
    audioOnly: 'Audio only',
    weakDownlink: 'Your connection is too weak for video.',
    weakUplink: 'Your connection is weak: the others may not see or hear you well.',
    connection: 'Connection',
    sending: 'sending',
    receiving: 'receiving',
    videoHere: 'video here',
    viaRelay: 'through a relay (TURN)',
    viaDirect: 'direct,',
    good: 'good',
    fair: 'fair',
    poor: 'poor',
    cameraRefused: 'The camera or microphone was refused or is not available. You can still join and see the others; allow access in your browser settings to be seen.',
    connecting: 'Connecting…',
    reconnecting: 'Call interrupted. Trying again…',
    retryNow: 'Retry now',
    noPath: 'The call cannot connect from this network: it seems to block video calls. Try another network (mobile data, another Wi-Fi), or ask its administrators to allow this site. Still trying…',
    alone: 'Waiting for others to join…',
    roomFull: 'This call is full.',
    overloaded: 'The service is very busy and cannot start new calls right now. Please try again in a few minutes.',
    invalidRoom: 'This link is not valid.',
    invalidName: 'A name is needed to join: open the link again and give yours.',
    error: 'Something went wrong: ',
  },
  fr: {
    tagline: 'Des appels vidéo dans votre navigateur. Rien à installer : partagez le lien.',
    newCall: 'Démarrer un appel',
    roomPlaceholder: 'Nom de la salle',
    joinByName: 'Rejoindre',
    yourName: 'Votre nom',
    microphone: 'Micro',
    camera: 'Caméra',
    join: 'Rejoindre l’appel',
    shareLink: 'Partagez ce lien pour inviter d’autres personnes :',
    copyLink: 'Copier le lien',
    linkCopied: 'Lien copié',
    leave: 'Quitter',
    youLeft: 'Vous avez quitté l’appel.',
    rejoin: 'Rejoindre à nouveau',
    home: 'Accueil',
    you: 'Vous',
    muteMic: 'Couper le micro',
    unmuteMic: 'Activer le micro',
    camOff: 'Couper la caméra',
    camOn: 'Activer la caméra',
    micOff: 'Micro coupé',
    speaking: 'Parle',
    audioOnly: 'Son seul',
    weakDownlink: 'Votre connexion est trop faible pour la vidéo.',
    weakUplink: 'Votre connexion est faible : les autres risquent de mal vous voir ou vous entendre.',
    connection: 'Connexion',
    sending: 'envoi',
    receiving: 'réception',
    videoHere: 'vidéo reçue ici',
    viaRelay: 'par un relais (TURN)',
    viaDirect: 'directe,',
    good: 'bonne',
    fair: 'moyenne',
    poor: 'faible',
    cameraRefused: 'La caméra ou le micro a été refusé ou n’est pas disponible. Vous pouvez rejoindre l’appel et voir les autres ; autorisez l’accès dans les réglages du navigateur pour être vu.',
    connecting: 'Connexion…',
    reconnecting: 'Appel interrompu. Nouvelle tentative…',
    retryNow: 'Réessayer maintenant',
    noPath: 'L’appel ne peut pas se connecter depuis ce réseau : il semble bloquer les appels vidéo. Essayez un autre réseau (données mobiles, autre Wi-Fi), ou demandez à ses administrateurs d’autoriser ce site. Nouvelle tentative en cours…',
    alone: 'En attente des autres participants…',
    roomFull: 'Cet appel est complet.',
    overloaded: 'Le service est très chargé et ne peut pas démarrer de nouvel appel pour le moment. Réessayez dans quelques minutes.',
    invalidRoom: 'Ce lien n’est pas valide.',
    invalidName: 'Il faut un nom pour rejoindre l’appel : rouvrez le lien et donnez le vôtre.',
    error: 'Une erreur est survenue : ',
  },
};

export const lang = (navigator.languages || [navigator.language || 'en'])
  .map((l) => l.slice(0, 2).toLowerCase())
  .find((l) => l in texts) || 'en';

export function t(key) {
  return texts[lang][key] ?? texts.en[key] ?? key;
}

/** Fills every element marked with data-i18n / data-i18n-placeholder. */
export function translatePage(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

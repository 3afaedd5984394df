// state.js: what the wizard holds while the tab is open, and the two ways a
// page's work stops early.

// app is the tab's state shared by the modules.
export const app = {
  options: null, // /ui/options.json
  me: null, // GET /api/v1/me
  gen: 0, // bumped on every render: work of a page no longer shown stops
  feed: null, // the event stream of the deployment on screen
  cleanups: [],
  flash: null, // one message shown by the next render
  signinMessage: '',
  clientsRoute: undefined, // whether the API serves generated clients
  first: true,
};

// SignedOut is thrown once the API refused the token and the page went to
// Sign in: whatever was running stops quietly.
export class SignedOut extends Error {}
// PageGone is thrown when the page a piece of work belongs to is no longer
// shown.
export class PageGone extends Error {}

// The router signs out (it shows Sign in); api.js and feed.js, which the
// router's pages import, reach it through this hook so that no module
// imports one that imports it.
let signOutHandler = () => {};
// onSignOut sets what signOut does (the router's sign-out).
export function onSignOut(fn) {
  signOutHandler = fn;
}
// signOut forgets the session and shows Sign in with message.
export function signOut(message) {
  signOutHandler(message);
}

// app.js: the algocloud wizard's entry, loaded as a module by index.html.
// One document; router.js routes on the path (/ui/home, /ui/new,
// /ui/deployments/{id}/{page}) and mounts the page modules below, which
// render with DOM calls (never HTML strings: every value from the API lands
// as text) and talk to the REST API with the token kept in sessionStorage.
import { route, setPages } from './router.js';
import { pageSignIn } from './pages/signin.js';
import { pageHome } from './pages/home.js';
import { pageDataType, pageServer } from './pages/new.js';
import { deploymentPage } from './pages/deployment.js';

setPages({ signin: pageSignIn, home: pageHome, datatype: pageDataType, server: pageServer, deployment: deploymentPage });

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', route);
else route();

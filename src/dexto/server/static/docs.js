// /docs: Swagger UI (bundled with the server) rendering this server's /openapi.json.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });
document.body.dataset.ready = 'true';

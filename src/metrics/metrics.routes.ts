import type { RequestHandler } from 'express';
import { defineRoute, type RouteTable } from '../http/route';

export interface MetricsRoutesDeps {
  /** What serves the Prometheus text: `Metrics.handler()`. */
  metrics: { handler(): RequestHandler };
}

/** GET /metrics: Prometheus text, for the scraper on the private network. */
export const metricsRoutes: RouteTable<MetricsRoutesDeps> = [
  defineRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'getMetrics',
    tag: 'operations',
    summary: 'Prometheus metrics',
    description:
      'Never signed, never rate limited: keep it off the public network. With WEB_CONCURRENCY > 1, the whole instance: every worker, added up; 503 when a worker does not answer in time.',
    errors: ['UNAVAILABLE'],
    response: {
      status: 200,
      description: 'Prometheus text exposition format (version 0.0.4)',
      content: { 'text/plain': { schema: { type: 'string' } } },
    },
    handler: ({ metrics }) => {
      const serve = metrics.handler();
      return async ({ req, res, next }) => {
        await serve(req, res, next);
      };
    },
  }),
];

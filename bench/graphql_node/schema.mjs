// The bench's schema and data, as gql-api serves them: posts newest first (50 seeded),
// each with an author profile, a tag filter, and createPost.
export const typeDefs = /* GraphQL */ `
  type Profile { userId: ID! nickname: String }
  type Post { id: ID! content: String! tags: [String!]! createdAt: String! author: Profile! }
  type PostEdge { cursor: String! node: Post! }
  type PostConnection { edges: [PostEdge!]! }
  input CreatePostInput { content: String! tags: [String!] }
  type Query { posts(first: Int = 20, tag: String): PostConnection! }
  type Mutation { createPost(input: CreatePostInput!): Post! }
`;

const start = Date.UTC(2026, 0, 1);
const stamp = (ms) => new Date(ms).toISOString().replace("Z", "000Z");
const posts = [];
for (let i = 0; i < Number(process.env.BENCH_POSTS || 50); i++) {
  posts.unshift({
    id: `post${String(i).padStart(4, "0")}`,
    content: `post number ${i}`,
    tags: ["bench", `t${i % 3}`],
    createdAt: stamp(start + 1000 * i),
    authorId: `user${i % 5}`,
  });
}
let made = 0;

export const resolvers = {
  Query: {
    posts: (_root, { first, tag }) => {
      const shown = [];
      for (const post of posts) {
        if (tag == null || post.tags.includes(tag)) shown.push({ cursor: post.id, node: post });
        if (shown.length === first) break;
      }
      return { edges: shown };
    },
  },
  Mutation: {
    createPost: (_root, { input }) => {
      made += 1;
      const post = {
        id: `new${made}`,
        content: input.content,
        tags: (input.tags || []).map((t) => t.trim().toLowerCase()),
        createdAt: stamp(Date.now()),
        authorId: "bench",
      };
      posts.unshift(post);
      return post;
    },
  },
  Post: { author: (post) => ({ userId: post.authorId, nickname: null }) },
};

export const port = Number(process.argv[2]);
